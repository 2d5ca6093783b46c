"""roles/lifeboat_service's env-file pause (manager command): templates/pause.env.j2 rendered by Ansible's own
templating with values holding the characters a bare KEY=VALUE line gets wrong (", \\, $, `, quotes, #, spaces at
both ends), then read back three ways - by systemd's documented EnvironmentFile= rules for a double-quoted value,
by the fixture web application's reader (tests/fixtures/webapp, what the integration tests pause), and by a POSIX
shell sourcing the file - each giving exactly the values given. validate.yml's refusals of a name that is not an
identifier and of a value that is not one line are evaluated from the role's own files."""
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "lifeboat_service"
PAUSE_ENV = {
    "JOBS_ENABLED": "0",
    "QUOTED": 'say "hi" \\ to $HOME and `echo injected` \\n $(echo injected)',
    "SINGLE": "it's # not a comment; a=b",
    "PADDED": "  two spaces at both ends  ",
    "EMPTY": "",
    "LETTERS": "é %n %%",
    "NUMBER": 3,
}
EXPECTED = {name: str(value) for name, value in PAUSE_ENV.items()}


def render(pause_env):
    """As ansible.builtin.template renders a file: escape_backslashes=False (plugins/action/template.py), so '\\\\'
    in the template is one backslash, as in plain Jinja; an inline YAML expression would double it."""
    templar = Templar(loader=DataLoader(), variables={"lifeboat_service_pause_env": pause_env})
    return templar.template(trust_as_template((ROLE / "templates" / "pause.env.j2").read_text()),
                            escape_backslashes=False)


def webapp_reader():
    spec = importlib.util.spec_from_file_location("lifeboat_webapp", REPO / "tests" / "fixtures" / "webapp" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_env_file


def systemd_double_quoted(text):
    """The file as systemd.exec(5) reads an EnvironmentFile= whose every assignment is NAME="value": # starts a
    comment line; inside the double quotes a backslash before one of \\ " ` $ preserves that character and before
    anything else is kept with it. Anything else (a bare value, text after the closing quote) fails: the
    template must write only this form."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, rvalue = line.partition("=")
        assert sep and rvalue.startswith('"'), f"not a double-quoted assignment: {line!r}"
        value, i = [], 1
        while rvalue[i] != '"':
            if rvalue[i] == "\\" and rvalue[i + 1] in '\\"`$':
                i += 1
            value.append(rvalue[i])
            i += 1
        assert i == len(rvalue) - 1, f"text after the closing quote: {line!r}"
        values[name] = "".join(value)
    return values


def test_every_reader_gets_the_values_given(tmp_path):
    env_file = tmp_path / "pause.env"
    env_file.write_text(render(PAUSE_ENV) + "\n")
    text = env_file.read_text()
    assert text.startswith("# Managed by Ansible, role lifeboat_service")
    assert systemd_double_quoted(text) == EXPECTED
    assert webapp_reader()(str(env_file)) == EXPECTED
    # A POSIX shell undoes the same four escapes inside double quotes: nothing is expanded or run.
    shell = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; exec "$2" -c "import json, os; print(json.dumps(dict(os.environ)))"', "sh",
         str(env_file), shutil.which("python3")], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=30, check=True)
    sourced = json.loads(shell.stdout)
    assert {name: sourced.get(name) for name in EXPECTED} == EXPECTED


@pytest.mark.parametrize("text, expected", [
    # systemd.exec(5)'s other forms, which the application reads as systemd does (hand-written files).
    ("A=bare value  \n", {"A": "bare value"}),
    ("  B = 'single \\ \"kept\"'  \n", {"B": 'single \\ "kept"'}),
    ('C="a \\x \\$ b"\n', {"C": "a \\x $ b"}),
    ("D=bare \\\" \\\\ quote\"inside\"\n", {"D": 'bare " \\ quote"inside"'}),
    ('E="joined"\'parts\'\n', {"E": "joinedparts"}),
    ('F="con\\\ntinued" \nG=one \\\ntwo\n', {"F": "continued", "G": "one two"}),
    ("# H=comment\n; I=comment\nno equals sign\nJ=\nK=last", {"J": "", "K": "last"}),
])
def test_webapp_reader_follows_systemd(tmp_path, text, expected):
    env_file = tmp_path / "other.env"
    env_file.write_text(text)
    assert webapp_reader()(str(env_file)) == expected


def settings_problems(pause_env):
    """validate.yml's list of problems for a pause by command, evaluated with the role's defaults."""
    loader = DataLoader()
    defaults = loader.load_from_file(str(ROLE / "defaults" / "main.yml"), trusted_as_template=True)
    task = loader.load_from_file(str(ROLE / "tasks" / "validate.yml"), trusted_as_template=True)[0]
    variables = {**defaults, "lifeboat_service_action": "pause", "lifeboat_service_manager": "command",
                 "lifeboat_service_start_command": ["start"], "lifeboat_service_stop_command": ["stop"],
                 "lifeboat_service_env_file": "/run/pause.env", "lifeboat_service_health_url": "http://127.0.0.1:1/",
                 **task["vars"], "lifeboat_service_pause_env": pause_env}
    return Templar(loader=loader, variables=variables).template(trust_as_template("{{ lifeboat_service_problems }}"))


def test_names_and_values_a_file_cannot_hold_are_refused_before_anything_runs():
    assert settings_problems(PAUSE_ENV) == []
    problems = settings_problems({"BAD-NAME": "1", "TRAILING\n": "1", "7UP": "1", "TWO_LINES": "a\nb", "CR": "a\r"})
    assert problems == [
        'lifeboat_service_pause_env: "BAD-NAME" is not an environment variable name (letters, digits and _)',
        'lifeboat_service_pause_env: "TRAILING\\n" is not an environment variable name (letters, digits and _)',
        'lifeboat_service_pause_env: "7UP" is not an environment variable name (letters, digits and _)',
        'lifeboat_service_pause_env: the value of "TWO_LINES" must be one line',
        'lifeboat_service_pause_env: the value of "CR" must be one line',
    ]
    assert not any("\n" in problem for problem in problems)
