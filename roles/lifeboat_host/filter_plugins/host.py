"""Filters of the lifeboat_host role. PRIVATE to the role lifeboat_host."""
import re

PG_DUMP = re.compile(r"^/usr/lib/postgresql/(\d+)/bin/pg_dump$")


def client_majors(found, minimum):
    """The major versions (sorted) of the pg_dump files an ansible.builtin.find result lists under
    /usr/lib/postgresql/N/bin, at least `minimum`."""
    majors = set()
    for item in (found or {}).get("files", []):
        match = PG_DUMP.match(item.get("path", ""))
        if match and int(match.group(1)) >= int(minimum or 0):
            majors.add(int(match.group(1)))
    return sorted(majors)


def cluster_major(lines, port):
    """The major version of the cluster pg_lsclusters --no-header lists on `port`, or ''."""
    for line in lines or []:
        fields = line.split()
        if len(fields) > 2 and fields[2] == str(port) and fields[0].isdigit():
            return fields[0]
    return ""


class FilterModule:
    def filters(self):
        return {"lifeboat_host_client_majors": client_majors, "lifeboat_host_cluster_major": cluster_major}
