"""The collection as it ships and the execution environment AWX runs lifeboat in (issue 18, item 1).

Everything runs offline and without root, in seconds: `ansible-galaxy collection build` and install
into an empty folder, `ansible-doc` there, `ansible-builder introspect` of that folder, and
`ansible-builder create` (which writes the build context, pulling and building nothing), whose galaxy
and builder stages are then replayed here as the image build would run them: the collection installed
from the context, ansible-builder's own introspect.py combining every requirement, bindep reading the
result for an RPM and a Debian platform. A proxy and a Galaxy server that refuse every connection
make any attempt to reach the network fail the test.
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest
import yaml
from bindep.depends import Depends
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTION = PROJECT / "collections" / "ansible_collections" / "lifeboat" / "db"
EE_FILE = PROJECT / "execution-environment.yml"
GALAXY = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
MODULES = sorted(path.stem for path in (COLLECTION / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
# Nothing listens on the discard port: a connection to it is refused at once.
REFUSED = "http://127.0.0.1:9"
# Files of a working tree that must never reach the tarball, wherever they are.
JUNK = re.compile(r"(^|/)(__pycache__|\.pytest_cache|\.ansible|tests/output)(/|$)|\.(pyc|tar\.gz|swp|orig|rej)$|~$")
# Where the planted junk goes in a copy of the collection (build_ignore's cases and ansible-galaxy's own).
PLANTED_JUNK = (
    "plugins/modules/__pycache__/dump.cpython-311.pyc", "plugins/module_utils/pg/tools.pyc",
    "lifeboat-db-0.0.1.tar.gz", "plugins/modules/old-build.tar.gz", ".pytest_cache/v/cache/lastfailed",
    "plugins/.pytest_cache/README.md", ".ansible/collections/x", "plugins/.ansible/tmp/x",
    "plugins/modules/.dump.py.swp", "plugins/modules/dump.py.orig", "plugins/modules/dump.py.rej",
    "README.md~", "tests/output/junit.xml",
)


def pins(path):
    """{canonical name: (line, version)} of a pip requirements file's `name==version` lines."""
    found = {}
    for line in Path(path).read_text().splitlines():
        line = re.sub(r"(^|\s+)#.*$", "", line).strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path}: {line} is not pinned"
            found[canonicalize_name(req.name)] = (line, spec.version)
    return found


PROJECT_PINS = {name: version for name, (_, version) in pins(PROJECT / "requirements.txt").items()}


def run(args, env, cwd, timeout=120):
    proc = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def dependency_closure(requirements, python_version):
    """Canonical names of `requirements` and of everything they pull in, from this venv's installed
    metadata, with markers evaluated for a Linux CPython `python_version`."""
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0",
                   "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    names, seen, todo = set(), set(), [Requirement(line) for line in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        for line in distribution(req.name).requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate(dict(environment, extra=extra))
                                         for extra in (req.extras or {""})):
                todo.append(dep)
    return names


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The tools' environment: this venv first on PATH, an empty ansible.cfg and ANSIBLE_HOME (the
    project's ansible.cfg would put ./collections on the path), no collection path given, and every
    way out to the network refused."""
    home = tmp_path_factory.mktemp("ansible-home")
    (home / "ansible.cfg").write_text("[defaults]\n")
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("ANSIBLE_") and key.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    return dict(environ, PATH=f"{BIN}{os.pathsep}{environ.get('PATH', '')}", NO_COLOR="1",
                ANSIBLE_HOME=str(home), ANSIBLE_CONFIG=str(home / "ansible.cfg"),
                ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_GALAXY_SERVER=f"{REFUSED}/api/",
                HTTP_PROXY=REFUSED, HTTPS_PROXY=REFUSED, http_proxy=REFUSED, https_proxy=REFUSED)


@pytest.fixture(scope="module")
def tarball(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    run([BIN / "ansible-galaxy", "collection", "build", COLLECTION, "--output-path", out], env, out)
    return out / TARBALL


@pytest.fixture(scope="module")
def installed(env, tarball, tmp_path_factory):
    """An empty folder the built tarball is installed into (offline: no dependency is looked up)."""
    folder = tmp_path_factory.mktemp("installed")
    run([BIN / "ansible-galaxy", "collection", "install", "--offline", tarball, "--collections-path", folder],
        env, folder)
    return folder


def members(tarball):
    with tarfile.open(tarball) as tar:
        return sorted(member.name for member in tar.getmembers())


def test_tarball_holds_the_collection_and_no_junk(tarball):
    files = members(tarball)
    assert [name for name in files if JUNK.search(name)] == []
    # safe.directory: a clone owned by another user than the one running the tests (CI as root).
    tracked = subprocess.run(["git", "-c", f"safe.directory={PROJECT}", "ls-files", "-z", "."], cwd=COLLECTION,
                             check=True, capture_output=True, text=True).stdout.split("\0")
    shipped = {name for name in tracked if name and name != "galaxy.yml" and (COLLECTION / name).is_file()}
    assert shipped - set(files) == set(), "tracked files of the collection are missing from the tarball"
    for name in ("MANIFEST.json", "meta/execution-environment.yml", "requirements.txt", "bindep.txt"):
        assert name in files


def test_build_ignore_leaves_out_what_a_working_tree_collects(env, tarball, tmp_path):
    copy = tmp_path / "ansible_collections" / "lifeboat" / "db"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in PLANTED_JUNK:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text("junk\n")
    out = tmp_path / "out"
    out.mkdir()
    run([BIN / "ansible-galaxy", "collection", "build", copy, "--output-path", out], env, out)
    with_junk = members(out / TARBALL)
    assert [name for name in with_junk if JUNK.search(name)] == []
    # Only the planted files' new folders (the emptied ones ansible-galaxy keeps) may differ.
    assert {name for name in with_junk if not (copy / name).is_dir()} == \
        {name for name in members(tarball) if not (COLLECTION / name).is_dir()}


def test_installed_tarball_documents_every_module(env, installed):
    doc_env = dict(env, ANSIBLE_COLLECTIONS_PATH=str(installed))
    listed = json.loads(run([BIN / "ansible-doc", "--json", "-l", "lifeboat.db"], doc_env, installed).stdout)
    assert sorted(listed) == [f"lifeboat.db.{name}" for name in MODULES]
    names = ["lifeboat.db.dump", "lifeboat.db.restore", "lifeboat.db.evidence", "lifeboat.db.integrity"]
    docs = json.loads(run([BIN / "ansible-doc", "--json", *names], doc_env, installed).stdout)
    for name in names:
        doc = docs[name]["doc"]
        # Read from the installed folder, not from the checkout.
        assert Path(doc["filename"]).is_relative_to(installed / "ansible_collections" / "lifeboat" / "db"), name
        assert doc["short_description"] and doc["options"], name
    # The doc fragments came along: the connection, S3 and offsite options are documented.
    assert {"login_password", "s3_endpoint_url", "offsite"} <= set(docs["lifeboat.db.dump"]["doc"]["options"])


def test_introspect_of_the_installed_collection_reports_what_it_needs(env, installed):
    proc = run([BIN / "ansible-builder", "introspect", installed], env, installed)
    data = yaml.safe_load(proc.stdout)  # a comment line naming the folder, then the YAML document
    assert "psycopg[binary]==3.3.9  # from collection lifeboat.db" in data["python"]
    assert "boto3==1.44.5  # from collection lifeboat.db" in data["python"]
    assert "postgresql [platform:rpm]  # from collection lifeboat.db" in data["system"]
    assert "postgresql-client [platform:dpkg]  # from collection lifeboat.db" in data["system"]


def test_collection_requirements_cover_its_imports_pinned_as_the_project():
    requirements = pins(COLLECTION / "requirements.txt")
    for name, (line, version) in requirements.items():
        assert PROJECT_PINS.get(name) == version, f"{line}: requirements.txt pins {name}=={PROJECT_PINS.get(name)}"
    # Every library the plugins import (outside the standard library and ansible) is a requirement
    # or comes with one (botocore with boto3); a requirement nothing imports does not belong.
    imported = set()
    for path in (COLLECTION / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported
                   if name not in sys.stdlib_module_names and name not in ("ansible", "ansible_collections")}
    installed = packages_distributions()
    assert third_party <= set(installed), f"plugins import {third_party - set(installed)}, which this venv lacks"
    distributions = {canonicalize_name(dist) for name in third_party for dist in installed[name]}
    this_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert distributions <= dependency_closure([line for line, _ in requirements.values()], this_python)
    for name in requirements:
        assert name in distributions, f"lifeboat.db's requirements.txt names {name}, which no plugin imports"


@pytest.fixture(scope="module")
def context(env, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("ee") / "context"
    run([BIN / "ansible-builder", "create", "--file", EE_FILE, "--context", ctx, "--output-filename", "Containerfile"],
        env, PROJECT)
    return ctx


@pytest.fixture(scope="module")
def image_collections(env, context, tmp_path_factory):
    """The image build's galaxy stage, replayed: the galaxy requirements installed from the context
    with the Containerfile's options; the collections folder it fills (/usr/share/ansible/collections)."""
    containerfile = (context / "Containerfile").read_text()
    opts = re.search(r'^ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="(.*)"$', containerfile, re.M).group(1).split()
    collections = tmp_path_factory.mktemp("usr-share-ansible") / "collections"
    run([BIN / "ansible-galaxy", "collection", "install", *opts, "-r", "requirements.yml",
         "--collections-path", collections], env, context / "_build")
    return collections


@pytest.fixture(scope="module")
def built_requirements(env, context, image_collections):
    """The image build's builder stage, replayed: ansible-builder's introspect.py combining the installed
    collections' requirements with the definition's own; the folder of the files it writes."""
    build = context / "_build"
    out = image_collections.parent / "output"
    run([sys.executable, build / "scripts" / "introspect.py", "introspect", image_collections,
         "--user-pip=requirements.txt", "--user-bindep=bindep.txt",
         f"--write-pip={out / 'requirements.txt'}", f"--write-bindep={out / 'bindep.txt'}"], env, build)
    return out


def test_image_holds_the_collection_the_tarball_holds(image_collections, installed):
    def files(folder):
        root = folder / "ansible_collections" / "lifeboat" / "db"
        return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    in_image = files(image_collections)
    assert [name for name in in_image if JUNK.search(name)] == []
    assert in_image == files(installed)


def test_context_installs_pinned_ansible_on_a_python_it_supports(context):
    definition = yaml.safe_load(EE_FILE.read_text())
    containerfile = (context / "Containerfile").read_text()
    assert f'ARG ANSIBLE_INSTALL_REFS="ansible-core=={PROJECT_PINS["ansible-core"]} ' \
           f'ansible-runner=={PROJECT_PINS["ansible-runner"]}"' in containerfile
    python = re.fullmatch(r".*/python(\d+\.\d+)", definition["dependencies"]["python_interpreter"]["python_path"])
    assert python, "execution-environment.yml: python_path must name its version (python3.X)"
    assert python.group(1) in SpecifierSet(distribution("ansible-core").metadata["Requires-Python"])
    assert f'ARG PYCMD="{python.group(0)}"' in containerfile
    # The PostgreSQL stream is chosen in the base stage, before any stage installs from bindep.
    base_stage = containerfile[:containerfile.index("FROM base AS galaxy")]
    assert re.search(r"^RUN \$PKGMGR module enable -y postgresql:\d+$", base_stage, re.M)
    assert "/output/scripts/install-from-bindep" in containerfile.split("FROM base AS final")[1]
    assert definition["options"]["tags"] == [f"lifeboat-ee:{GALAXY['version']}", "lifeboat-ee:latest"]


def test_context_ships_the_collection_with_its_requirements(context):
    build = context / "_build"
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    (entry,) = galaxy["collections"]
    assert entry["name"] == "lifeboat.db" and entry["type"] == "dir"
    source = build / entry["source"]
    for name in ("galaxy.yml", "meta/execution-environment.yml", "requirements.txt", "bindep.txt"):
        assert (source / name).read_bytes() == (COLLECTION / name).read_bytes(), name
    assert {path.stem for path in (source / "plugins" / "modules").glob("*.py")} >= set(MODULES)


def test_built_image_would_get_lifeboats_libraries_and_tools(built_requirements):
    python = (built_requirements / "requirements.txt").read_text()
    assert "psycopg[binary]==3.3.9  # from collection lifeboat.db" in python
    assert "boto3==1.44.5  # from collection lifeboat.db" in python
    assert "docker==7.2.0  # from collection lifeboat.db" in python
    system = Depends((built_requirements / "bindep.txt").read_text())
    el9 = {rule[0] for rule in system.active_rules(["platform:rpm", "platform:redhat", "platform:almalinux"])}
    debian = {rule[0] for rule in system.active_rules(["platform:dpkg", "platform:debian"])}
    assert el9 == {"postgresql", "openssh-clients"}
    assert debian == {"postgresql-client", "openssh-client"}


def test_built_image_pins_every_library_as_the_tests_run_it(built_requirements):
    definition = yaml.safe_load(EE_FILE.read_text())
    combined = {}
    for line in (built_requirements / "requirements.txt").read_text().splitlines():
        req = Requirement(re.sub(r"\s+#.*$", "", line))
        (spec,) = req.specifier
        assert spec.operator == "==", f"{line}: not pinned"
        combined.setdefault(canonicalize_name(req.name), set()).add(spec.version)
        assert PROJECT_PINS.get(canonicalize_name(req.name)) == spec.version, \
            f"{line}: requirements.txt pins {req.name}=={PROJECT_PINS.get(canonicalize_name(req.name))}"
    assert all(len(versions) == 1 for versions in combined.values()), combined
    # Everything ansible-core, ansible-runner and lifeboat.db's requirements pull in, on the image's
    # Python, is pinned; ansible-core and ansible-runner themselves come from ANSIBLE_INSTALL_REFS.
    python_version = re.search(r"(\d+\.\d+)$", definition["dependencies"]["python_interpreter"]["python_path"])
    wanted = dependency_closure([definition["dependencies"]["ansible_core"]["package_pip"],
                                 definition["dependencies"]["ansible_runner"]["package_pip"],
                                 *(line for line, _ in pins(COLLECTION / "requirements.txt").values())],
                                python_version.group(1))
    assert set(combined) == wanted - {"ansible-core", "ansible-runner"}
