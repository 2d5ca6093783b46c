"""roles/lifeboat_host's reading of pg_lsclusters and of the installed pg_dump binaries."""
import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_host" / "filter_plugins" / "host.py"
spec = importlib.util.spec_from_file_location("lifeboat_host_filters", PLUGIN)
host = importlib.util.module_from_spec(spec)
spec.loader.exec_module(host)

CLUSTERS = [
    "15  main    5432 online postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log",
    "16  reports 5433 down   postgres /var/lib/postgresql/16/reports /var/log/postgresql/postgresql-16-reports.log",
]


def test_cluster_major_is_the_one_on_the_port():
    assert host.cluster_major(CLUSTERS, 5432) == "15"
    assert host.cluster_major(CLUSTERS, "5433") == "16"
    assert host.cluster_major(CLUSTERS, 5434) == ""
    assert host.cluster_major([], 5432) == "" and host.cluster_major(None, 5432) == ""


def test_client_majors_at_least_the_minimum():
    found = {"files": [{"path": "/usr/lib/postgresql/%s/bin/pg_dump" % major} for major in ("13", "15", "17")]
             + [{"path": "/usr/lib/postgresql/15/lib/pg_dump"}, {"path": "/usr/lib/postgresql/x/bin/pg_dump"}]}
    assert host.client_majors(found, "15") == [15, 17]
    assert host.client_majors(found, 0) == [13, 15, 17]
    assert host.client_majors(found, 18) == []
    assert host.client_majors({"files": []}, 15) == [] and host.client_majors(None, 15) == []
