"""roles/lifeboat_service's systemd pause: templates/pause.conf.j2 rendered by Ansible's own templating, with values
holding a space, % and " (and a backslash and a non-ASCII letter), read back by systemd's rules for Environment=
(each assignment one word: quotes and C escapes undone, then %% a literal %) and checked by systemd's own parser
(systemd-analyze verify prints a line for every assignment it cannot read). No systemd runs in the tests, so the
integration tests pause through the env file; this is the systemd branch's proof."""
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

TEMPLATES = Path(__file__).resolve().parents[3] / "roles" / "lifeboat_service" / "templates"
PAUSE_ENV = {"JOBS_ENABLED": "0", "NOTE": 'two words, 100% "quoted" \\ back é', "SPEC": "%n %%i"}

# systemd's C escapes (cunescape) that a JSON string can hold, as extract_first_word reads them.
ESCAPES = {"\\": "\\", '"': '"', "'": "'", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def render(name, pause_env):
    templar = Templar(loader=DataLoader(), variables={"lifeboat_service_pause_env": pause_env})
    return templar.template(trust_as_template((TEMPLATES / name).read_text()))


def systemd_words(rvalue):
    """The words of an Environment= value as systemd splits them: whitespace outside quotes separates, quotes are
    removed, backslash escapes are undone inside and outside quotes."""
    words, word, quote, started, i = [], [], None, False, 0
    while i < len(rvalue):
        char = rvalue[i]
        if char == "\\":
            escape = rvalue[i + 1]
            if escape == "u":
                word.append(chr(int(rvalue[i + 2:i + 6], 16)))
                i += 6
            else:
                word.append(ESCAPES[escape])
                i += 2
            started = True
            continue
        if quote:
            if char == quote:
                quote = None
            else:
                word.append(char)
        elif char in "\"'":
            quote, started = char, True
        elif char.isspace():
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(char)
            started = True
        i += 1
    assert quote is None, f"unbalanced quote in {rvalue!r}"
    if started:
        words.append("".join(word))
    return words


def resolve_specifiers(word):
    """systemd then replaces specifiers in each word: %% is a literal %, any other % something else (%n the unit's
    name), which a pause must never set."""
    parts = word.split("%%")
    assert not any("%" in part for part in parts), f"a specifier systemd would replace in {word!r}"
    return "%".join(parts)


def test_dropin_values_reach_the_service_as_given():
    lines = render("pause.conf.j2", PAUSE_ENV).splitlines()
    assert lines[1] == "[Service]"
    assignments = [line[len("Environment="):] for line in lines if line.startswith("Environment=")]
    # One Environment= per variable, each a single word however many spaces its value holds.
    words = [systemd_words(value) for value in assignments]
    assert all(len(w) == 1 for w in words), words
    assert [resolve_specifiers(w[0]) for w in words] == [f"{name}={value}" for name, value in PAUSE_ENV.items()]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_reads_every_assignment_of_the_dropin(tmp_path):
    units = tmp_path / "units"
    (units / "lifeboat-test.service.d").mkdir(parents=True)
    (units / "lifeboat-test.service").write_text("[Unit]\nDescription=pause drop-in test\n[Service]\n"
                                                 "ExecStart=/bin/true\n")
    (units / "lifeboat-test.service.d" / "lifeboat-pause.conf").write_text(render("pause.conf.j2", PAUSE_ENV) + "\n")
    # The same with the value written bare, as a template without quoting would: systemd complains - so the
    # check below would see a drop-in it cannot read.
    (units / "lifeboat-bare.service.d").mkdir()
    (units / "lifeboat-bare.service").write_text((units / "lifeboat-test.service").read_text())
    (units / "lifeboat-bare.service.d" / "lifeboat-pause.conf").write_text(
        "[Service]\n" + "".join(f"Environment={name}={value}\n" for name, value in PAUSE_ENV.items()))

    def verify(unit):
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(units / unit)], capture_output=True,
                              text=True, timeout=60, env={"SYSTEMD_UNIT_PATH": f"{units}:", "PATH": "/usr/bin:/bin"})
        return proc.stdout + proc.stderr

    assert verify("lifeboat-test.service") == ""
    assert "lifeboat-pause.conf" in verify("lifeboat-bare.service")
