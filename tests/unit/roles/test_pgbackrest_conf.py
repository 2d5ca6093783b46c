"""roles/lifeboat_pgbackrest's pgbackrest.conf: what an S3 repository, encryption and extra options become.
(tests/integration/test_pgbackrest_s3.py proves a rendered file against pgBackRest and moto over TLS.)"""
from pathlib import Path

import jinja2
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_pgbackrest"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
TEMPLATE = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), undefined=jinja2.StrictUndefined,
                              trim_blocks=True).get_template("pgbackrest.conf.j2")
S3 = {"endpoint": "s3.eu-central-1.amazonaws.com", "bucket": "backups", "region": "eu-central-1"}


def render(**variables):
    lines = TEMPLATE.render(dict(DEFAULTS, **variables)).splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_posix_repository_has_no_s3_or_cipher_lines():
    lines = render()
    assert "repo1-type=posix" in lines and "repo1-path=/var/lib/pgbackrest" in lines
    assert not [line for line in lines if line.startswith(("repo1-s3-", "repo1-storage-", "repo1-cipher-"))], lines
    assert lines[-4:] == ["[main]", "pg1-path=/var/lib/postgresql/15/main", "pg1-port=5432",
                          "pg1-socket-path=/var/run/postgresql"]


def test_s3_minimal_uses_the_instance_role_and_pgbackrest_defaults():
    lines = render(lifeboat_pgbackrest_repo_type="s3", lifeboat_pgbackrest_s3=S3)
    s3 = [line for line in lines if line.startswith(("repo1-s3-", "repo1-storage-"))]
    assert s3 == ["repo1-s3-endpoint=s3.eu-central-1.amazonaws.com", "repo1-s3-bucket=backups",
                  "repo1-s3-region=eu-central-1", "repo1-s3-key-type=auto"], s3


def test_s3_everything():
    lines = render(lifeboat_pgbackrest_repo_type="s3", lifeboat_pgbackrest_s3=dict(
        S3, port=9000, uri_style="path", kms_key_id="arn:aws:kms:k", key="AKIA", key_secret="s3cr3t",
        verify_tls=True, ca_file="/etc/ssl/ca.pem", ca_path="/etc/ssl/certs"))
    for line in ("repo1-storage-port=9000", "repo1-s3-uri-style=path", "repo1-s3-kms-key-id=arn:aws:kms:k",
                 "repo1-s3-key=AKIA", "repo1-s3-key-secret=s3cr3t", "repo1-storage-verify-tls=y",
                 "repo1-storage-ca-file=/etc/ssl/ca.pem", "repo1-storage-ca-path=/etc/ssl/certs"):
        assert line in lines, (line, lines)
    assert "repo1-s3-key-type=auto" not in lines
    # verify_tls false is written as pgBackRest's n, not left out.
    off = render(lifeboat_pgbackrest_repo_type="s3", lifeboat_pgbackrest_s3=dict(S3, verify_tls=False))
    assert "repo1-storage-verify-tls=n" in off


def test_cipher_and_extra_options():
    lines = render(lifeboat_pgbackrest_cipher_type="aes-256-cbc", lifeboat_pgbackrest_cipher_pass="pass phrase",
                   lifeboat_pgbackrest_options={"io-timeout": 10, "archive-async": True, "delta": False,
                                                "spool-path": "/var/spool/pgbackrest"})
    assert ["repo1-cipher-type=aes-256-cbc", "repo1-cipher-pass=pass phrase"] == \
        [line for line in lines if line.startswith("repo1-cipher-")]
    # Sorted, booleans as y/n, all in [global] before the first stanza.
    extra = lines[lines.index("start-fast=y") + 1:lines.index("[main]")]
    assert extra == ["archive-async=y", "delta=n", "io-timeout=10", "spool-path=/var/spool/pgbackrest"], extra
