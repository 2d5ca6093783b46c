"""Hostile repositories: a backup set is untrusted input, local and in S3 (issue 15, item 1).

Each case plants a set lifeboat did not write - a manifest naming files outside its set, a
manifest of another set or database, sizes that lie, JSON that is not a manifest - or a symbolic
link at a path lifeboat creates. Every reader (restore by id and latest, backup_info list and
verify, the S3 download) refuses such a set in one line naming it, never counts it as a backup,
and nothing is written outside the repository or the cache (a canary folder stays empty).
The cases of one kind run as one play, so the whole file costs a handful of ansible runs.
"""
import datetime
import json
import os
import shutil


from conftest import assert_one_line, backup_sets, embedded_only

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def later(stamp, seconds):
    moment = datetime.datetime.strptime(stamp, ISO) + datetime.timedelta(seconds=seconds)
    return moment.strftime(ISO)


def hostile_id(good_id, number):
    # Same second as the good set (so the ids look like ours), a suffix of its own.
    return "%s-ff%04d" % (good_id.split("-")[0], number)


def local_cases(db, good, canary):
    """name -> function(manifest) returning the manifest (dict) or the raw text to store."""
    dump = f"{db}.dump"
    good_file = f"../{good}/{dump}"

    def entry(m, **changes):
        m["files"][0].update(changes)
        return m

    return {
        "climbing_archive": lambda m: dict(entry(m, name=good_file), archive=good_file),
        "absolute_archive": lambda m: dict(entry(m, name=str(canary / "x.dump")), archive=str(canary / "x.dump")),
        "nul_in_name": lambda m: dict(entry(m, name=dump + "\u0000x"), archive=dump + "\u0000x"),
        "backslash_climb": lambda m: dict(entry(m, name="..\\..\\" + dump), archive="..\\..\\" + dump),
        "directory_climb": lambda m: dict(entry(m, name=f"{db}.dir/../../{good}/{dump}"), format="directory",
                                          archive=f"{db}.dir"),
        "backup_id_of_another_set": lambda m: dict(m, backup_id=good),
        "database_of_another_folder": lambda m: dict(m, database="postgres"),
        "negative_size": lambda m: entry(m, size=-1),
        "size_not_a_number": lambda m: entry(m, size="123"),
        "files_not_a_list": lambda m: dict(m, files={"name": dump}),
        "started_at_not_a_time": lambda m: dict(m, started_at="yesterday"),
        "json_list": lambda m: json.dumps([m]),
        "json_string": lambda m: json.dumps("manifest"),
        "truncated_json": lambda m: json.dumps(m)[:200],
    }


def plant(folder, good_folder, new_id, mutate):
    """A copy of the good set under `new_id`, its manifest changed by `mutate`, dated newer."""
    shutil.copytree(good_folder, folder)
    manifest = json.loads((good_folder / "manifest.json").read_text())
    manifest = dict(manifest, backup_id=new_id, started_at=later(manifest["started_at"], 5))
    manifest["files"] = [dict(f) for f in manifest["files"]]
    changed = mutate(manifest)
    (folder / "manifest.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))


def report(played):
    """One line per task (shown with pytest -rA): the record of what each hostile case returned."""
    for name, result in played.tasks:
        print("%-45s %s %s" % (name, "FAILED" if result["failed"] else "ok", (result.get("msg") or "")[:300]))


def assert_refused(result, backup_id):
    assert_one_line(result, backup_id)


@embedded_only
def test_hostile_local_sets_are_refused_and_never_latest(server, ansible, sample_db):
    repo = ansible.repository
    good = ansible.module("dump", db=sample_db, repository=str(repo))
    assert not good["failed"], good.get("msg")
    canary = ansible.workdir / "canary"
    canary.mkdir()
    cases = local_cases(sample_db, good["backup_id"], canary)
    ids = {}
    for number, (name, mutate) in enumerate(sorted(cases.items())):
        ids[name] = hostile_id(good["backup_id"], number)
        plant(repo / sample_db / ids[name], repo / sample_db / good["backup_id"], ids[name], mutate)
    target = sample_db + "_h"
    server.drop_db(target)
    base = dict(repository=str(repo), backup_db=sample_db)
    tasks = []
    for name in sorted(cases):
        tasks.append({"name": f"restore {name}", "ignore_errors": True,
                      "lifeboat.db.restore": dict(base, db=target, backup=ids[name], mode="new")})
        tasks.append({"name": f"info {name}", "ignore_errors": True,
                      "lifeboat.db.backup_info": dict(repository=str(repo), db=sample_db, backup=ids[name])})
    by_path = ("climbing_archive", "absolute_archive", "json_list")
    for name in by_path:  # a set given by its path is read by sources.local_path: checked the same
        tasks.append({"name": f"path {name}", "ignore_errors": True,
                      "lifeboat.db.restore": dict(base, db=target, backup=str(repo / sample_db / ids[name]),
                                                  mode="new")})
    tasks += [{"name": "list", "ignore_errors": True,
               "lifeboat.db.backup_info": dict(repository=str(repo), db=sample_db)},
              {"name": "verify", "ignore_errors": True,
               "lifeboat.db.backup_info": dict(repository=str(repo), db=sample_db, verify=True)},
              {"name": "latest", "ignore_errors": True, "check_mode": True,
               "lifeboat.db.restore": dict(base, db=target, mode="new")}]
    played = ansible.play(tasks)
    report(played)
    try:
        for name in sorted(cases):
            assert_refused(played.result(f"restore {name}"), ids[name])
            assert_refused(played.result(f"info {name}"), ids[name])
        for name in by_path:
            assert_refused(played.result(f"path {name}"), ids[name])
        listed = played.result("list")
        assert not listed["failed"], listed.get("msg")
        assert [b["backup_id"] for b in listed["backups"]] == [good["backup_id"]]
        assert sorted(i["backup_id"] for i in listed["invalid"]) == sorted(ids.values())
        assert all(i["reason"] and "\n" not in i["reason"] for i in listed["invalid"])
        assert listed["warnings"]
        verified = played.result("verify")
        assert not verified["failed"], verified.get("msg")
        assert list(verified["verified"]) == [good["backup_id"]]
        latest = played.result("latest")
        assert not latest["failed"] and latest["backup_id"] == good["backup_id"], latest.get("msg")
        assert not server.exists(target)
        assert os.listdir(canary) == []
    finally:
        server.drop_db(target)


def put_set(client, bucket, prefix, manifest_body, objects):
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=body)
    client.put_object(Bucket=bucket, Key=f"{prefix}/manifest.json", Body=manifest_body)


@embedded_only
def test_hostile_s3_sets_are_refused_and_nothing_lands_outside_the_cache(server, ansible, sample_db, moto):
    bucket = moto.bucket("lb-hostile-s3")
    client = moto.client()
    s3 = dict(repository=f"s3://{bucket}/h", cache_dir=str(ansible.workdir / "cache"), **moto.options())
    good = ansible.module("dump", db=sample_db, **s3)
    assert not good["failed"], good.get("msg")
    gid, dump = good["backup_id"], f"{sample_db}.dump"
    body = client.get_object(Bucket=bucket, Key=f"h/{sample_db}/{gid}/{dump}")["Body"].read()
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"h/{sample_db}/{gid}/manifest.json")["Body"].read())
    canary = ansible.workdir / "canary"
    canary.mkdir()
    # From the cache's staging folder <cache>/<db>/.partial-<id>/, three levels up is the workdir.
    climb = "../../../canary/climb.dump"
    absolute = str(canary / "abs.dump")

    def variant(**changes):
        m = dict(manifest, started_at=later(manifest["started_at"], 5), **changes)
        m["files"] = [dict(f) for f in manifest["files"]]
        return m

    def named(name):
        m = variant(archive=name)
        m["files"][0]["name"] = name
        return m

    def sized(delta):
        m = variant()
        m["files"][0]["size"] += delta
        return m

    cases = {
        "climbing_name": (named(climb), {climb: body}),
        "absolute_name": (named(absolute), {absolute: body}),
        "nul_in_name": (named(dump + "\u0000x"), {}),
        "backup_id_of_another_set": (variant(backup_id=gid), {dump: body}),
        "database_of_another_prefix": (variant(database="postgres"), {dump: body}),
        "size_bigger_than_s3": (sized(+100), {dump: body}),
        "size_smaller_than_s3": (sized(-100), {dump: body}),
        "json_list": ([manifest], {dump: body}),
        "truncated_json": (json.dumps(manifest)[:200], {dump: body}),
    }
    ids = {}
    for number, (name, (doc, objects)) in enumerate(sorted(cases.items())):
        ids[name] = hostile_id(gid, number)
        if isinstance(doc, dict) and name != "backup_id_of_another_set":
            doc = dict(doc, backup_id=ids[name])
        text = doc if isinstance(doc, str) else json.dumps(doc)
        put_set(client, bucket, f"h/{sample_db}/{ids[name]}", text.encode(), objects)
    target = sample_db + "_h"
    server.drop_db(target)
    listing = dict((k, v) for k, v in s3.items() if k != "cache_dir")
    tasks = []
    for name in sorted(cases):
        tasks.append({"name": f"restore {name}", "ignore_errors": True,
                      "lifeboat.db.restore": dict(s3, db=target, backup_db=sample_db, backup=ids[name], mode="new")})
        tasks.append({"name": f"url {name}", "ignore_errors": True,
                      "lifeboat.db.restore": dict(s3, repository=str(ansible.repository), db=target, mode="new",
                                                  backup=f"s3://{bucket}/h/{sample_db}/{ids[name]}")})
        tasks.append({"name": f"verify {name}", "ignore_errors": True,
                      "lifeboat.db.backup_info": dict(listing, db=sample_db, backup=ids[name], verify=True)})
    tasks += [{"name": "list", "ignore_errors": True, "lifeboat.db.backup_info": dict(listing, db=sample_db)},
              {"name": "verify all", "ignore_errors": True,
               "lifeboat.db.backup_info": dict(listing, db=sample_db, verify=True)},
              {"name": "latest", "ignore_errors": True, "check_mode": True,
               "lifeboat.db.restore": dict(s3, db=target, backup_db=sample_db, mode="new")}]
    played = ansible.play(tasks)
    report(played)
    try:
        for name in sorted(cases):
            for what in ("restore", "url", "verify"):
                assert_refused(played.result(f"{what} {name}"), ids[name])
        listed = played.result("list")
        assert not listed["failed"], listed.get("msg")
        assert [b["backup_id"] for b in listed["backups"]] == [gid]
        assert sorted(i["backup_id"] for i in listed["invalid"]) == sorted(ids.values())
        verified = played.result("verify all")
        assert not verified["failed"] and list(verified["verified"]) == [gid], verified.get("msg")
        latest = played.result("latest")
        assert not latest["failed"] and latest["backup_id"] == gid, latest.get("msg")
        assert not server.exists(target)
        assert os.listdir(canary) == []
        cache = ansible.workdir / "cache" / sample_db
        assert not cache.exists() or backup_sets(cache) == []
        assert not [n for n in (os.listdir(cache) if cache.exists() else []) if n.startswith(".partial-")]
    finally:
        server.drop_db(target)


@embedded_only
def test_planted_links_are_never_written_through(server, ansible, sample_db, moto):
    """A symbolic link where lifeboat creates a folder or a file: the database folder, the lock,
    the progress files, a set's verification record, the S3 cache's database and staging folders."""
    bucket = moto.bucket("lb-hostile-links")
    s3 = dict(repository=f"s3://{bucket}/l", cache_dir=str(ansible.workdir / "cache"), **moto.options())
    remote = ansible.module("dump", db=sample_db, **s3)
    local = ansible.module("dump", db=sample_db, repository=str(ansible.repository))
    assert not remote["failed"] and not local["failed"], (remote.get("msg"), local.get("msg"))
    canary = ansible.workdir / "canary"
    (canary / "dbdir").mkdir(parents=True)
    (canary / "cachedb").mkdir()
    (canary / "partial").mkdir()
    work = ansible.workdir

    def link(path, to):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.symlink(to, path)

    link(work / "r_dbdir" / sample_db, canary / "dbdir")
    link(work / "r_lock" / sample_db / ".lock", canary / "lock")
    link(work / "r_progress" / sample_db / ".progress.json", canary / "progress")
    link(ansible.repository / sample_db / ".restore-progress.json", canary / "restore-progress")
    link(ansible.repository / sample_db / local["backup_id"] / "verification.json", canary / "verification")
    for folder in ("c_db", "c_partial"):
        (work / folder).mkdir(mode=0o700)
    link(work / "c_db" / sample_db, canary / "cachedb")
    link(work / "c_partial" / sample_db / (".partial-" + remote["backup_id"]), canary / "partial")
    target = sample_db + "_l"
    server.drop_db(target)

    def dump(repo):
        return {"lifeboat.db.dump": dict(db=sample_db, repository=str(work / repo))}

    def s3_restore(cache):
        return {"lifeboat.db.restore": dict(s3, cache_dir=str(work / cache), db=target, backup_db=sample_db,
                                            backup=remote["backup_id"], mode="new")}

    tasks = [dict(dump("r_dbdir"), name="database folder", ignore_errors=True),
             dict(dump("r_lock"), name="lock", ignore_errors=True),
             dict(dump("r_progress"), name="progress", ignore_errors=True),
             dict(name="verification", ignore_errors=True,
                  **{"lifeboat.db.backup_info": dict(repository=str(ansible.repository), db=sample_db, verify=True)}),
             dict(name="restore progress", ignore_errors=True, check_mode=True,
                  **{"lifeboat.db.restore": dict(repository=str(ansible.repository), db=target, backup_db=sample_db,
                                                 mode="new")}),
             dict(s3_restore("c_db"), name="cache database folder", ignore_errors=True),
             dict(s3_restore("c_partial"), name="cache staging folder", ignore_errors=True)]
    played = ansible.play(tasks)
    report(played)
    try:
        assert_one_line(played.result("database folder"), "symbolic link")
        assert_one_line(played.result("lock"), "symbolic link")
        assert_one_line(played.result("cache database folder"), "symbolic link")
        assert os.listdir(canary / "dbdir") == [] and os.listdir(canary / "cachedb") == []
        assert os.listdir(canary / "partial") == []
        assert sorted(os.listdir(canary)) == ["cachedb", "dbdir", "partial"], "nothing created through a link"
        # Where lifeboat replaces a link by its own file, the replacement is a real file.
        for result in ("progress", "verification"):
            assert not played.result(result)["failed"], played.result(result).get("msg")
    finally:
        server.drop_db(target)
