"""roles/lifeboat_service's private module lifeboat_service_http: how a health answer is judged, and the upload's
multipart body read back by the parser the fixture application uses. The requests themselves, the attempts and
the smoke checks run against the real application in tests/integration/test_service.py."""
import email.parser
import email.policy
import importlib.util
import json
from pathlib import Path

MODULE = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_service" / "library" / "lifeboat_service_http.py"
spec = importlib.util.spec_from_file_location("lifeboat_service_http", MODULE)
http = importlib.util.module_from_spec(spec)
spec.loader.exec_module(http)


def judged(body, status=200, expected=None, wanted_status=200):
    params = {"status": wanted_status, "json": expected or {}}
    return http.health_problem(params, status, json.dumps(body).encode() if not isinstance(body, bytes) else body)


def test_status_and_json_fields():
    assert judged({"status": "ok"}) is None
    assert judged({"status": "ok"}, status=503) == "answered 503, not 200"
    assert judged({"status": "ok", "db": {"up": True}}, expected={"status": "ok", "db.up": True}) is None
    assert judged({"status": "degraded"}, expected={"status": "ok"}) == 'its JSON field status is "degraded", not "ok"'
    assert judged({"status": "ok"}, expected={"db.up": True}) == "its JSON has no field db.up"
    assert judged(b"<html>up</html>", expected={"status": "ok"}) == "answered 200 but its body is not JSON"
    # The string "true" is not true: values compare as the JSON has them.
    assert judged({"jobs_enabled": "true"}, expected={"jobs_enabled": True}) == \
        'its JSON field jobs_enabled is "true", not true'
    # Any status may be the expected one (a maintenance page answering 503 on purpose).
    assert judged({}, status=503, wanted_status=503) is None


def test_upload_body_is_the_multipart_the_application_reads():
    body, content_type = http.multipart("file", "smoke.txt", "héllo\r\n--not-a-boundary")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    (part,) = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "smoke.txt"
    assert part.get_payload(decode=True) == "héllo\r\n--not-a-boundary".encode()


def test_first_line_keeps_a_failure_on_one_line():
    assert http.first_line("a\nb\r\n  c") == "a b c"
    assert len(http.first_line("x" * 500)) == 200
