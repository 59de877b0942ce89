"""A Galaxy server on loopback for building the execution environment without reaching galaxy.ansible.com.

It serves, through the part of Galaxy's v3 API that `ansible-galaxy collection install` uses (the API
root, a collection's versions, one version's metadata, the artifact), the collections of the `ansible`
PyPI package installed in this virtualenv: each is packed into a collection artifact from the files its
own FILES.json lists, so what it serves is exactly what that package ships. This is what a private
Automation Hub does for an ansible-builder build (`ANSIBLE_GALAXY_CLI_COLLECTION_OPTS=-s <server>`).

    python local_galaxy.py --port 0 --ready-file FILE amazon.aws community.aws

writes "http://127.0.0.1:<port>/api/" to FILE once it listens, and serves until killed.
"""
from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import json
import sys
import tarfile
import time
from pathlib import Path

STARTED = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def collection_root(name: str) -> Path:
    namespace, collection = name.split(".")
    for entry in sys.path:
        root = Path(entry) / "ansible_collections" / namespace / collection
        if (root / "MANIFEST.json").is_file():
            return root
    raise SystemExit("collection %s is not installed (the `ansible` package brings it)" % name)


def artifact(root: Path) -> tuple[dict, bytes]:
    """(MANIFEST.json's collection_info, a .tar.gz artifact of the collection as installed).

    The `ansible` package leaves out what its collections' FILES.json lists for tests and CI (about
    1,800 of amazon.aws' 2,074 entries), and ansible-galaxy checks an artifact's files against its
    FILES.json and that file against MANIFEST.json: the artifact lists the files it holds (each file's
    recorded sha256 is checked against the installed file), with MANIFEST.json's FILES.json digest
    updated to match.
    """
    manifest = json.loads((root / "MANIFEST.json").read_text())
    files = json.loads((root / "FILES.json").read_text())
    present = [entry for entry in files["files"] if entry["name"] == "." or (root / entry["name"]).exists()]
    for entry in present:
        if entry["ftype"] == "file" and hashlib.sha256((root / entry["name"]).read_bytes()).hexdigest() != entry["chksum_sha256"]:
            raise SystemExit("%s: %s differs from its FILES.json digest" % (root, entry["name"]))
    files_json = json.dumps(dict(files, files=present), indent=4).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    manifest_json = json.dumps(manifest, indent=4).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("MANIFEST.json", manifest_json), ("FILES.json", files_json)):
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(data), 0o644
            tar.addfile(member, io.BytesIO(data))
        for entry in present:
            if entry["name"] != ".":
                tar.add(root / entry["name"], arcname=entry["name"], recursive=False)
    return manifest["collection_info"], buffer.getvalue()


def build_index(names: list[str]) -> dict:
    index = {}
    for name in names:
        info, data = artifact(collection_root(name))
        filename = "%s-%s-%s.tar.gz" % (info["namespace"], info["name"], info["version"])
        index[name] = {"info": info, "data": data, "filename": filename, "sha256": hashlib.sha256(data).hexdigest()}
    return index


def serve(index: dict, port: int, ready_file: str | None) -> None:
    by_file = {entry["filename"]: entry for entry in index.values()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            parts = [p for p in path.split("/") if p]
            if parts == ["api"]:
                return self.reply({"available_versions": {"v3": "v3/"}})
            if parts[:1] == ["download"] and len(parts) == 2 and parts[1] in by_file:
                return self.reply(by_file[parts[1]]["data"], "application/gzip")
            entry = index.get("%s.%s" % (parts[3], parts[4])) if parts[:3] == ["api", "v3", "collections"] and len(parts) >= 5 else None
            if entry is not None and len(parts) == 5:
                info = entry["info"]
                return self.reply({"namespace": info["namespace"], "name": info["name"], "href": path,
                                   "created_at": STARTED, "updated_at": STARTED, "highest_version": {"version": info["version"]}})
            if entry is not None and len(parts) >= 6 and parts[5] == "versions":
                info = entry["info"]
                if len(parts) == 6:
                    return self.reply({"meta": {"count": 1}, "links": {"next": None},
                                       "data": [{"version": info["version"], "href": path + info["version"] + "/"}]})
                if len(parts) == 7 and parts[6] == info["version"]:
                    return self.reply({
                        "namespace": {"name": info["namespace"]}, "collection": {"name": info["name"]},
                        "version": info["version"], "href": path, "download_url": "/download/" + entry["filename"],
                        "artifact": {"filename": entry["filename"], "sha256": entry["sha256"], "size": len(entry["data"])},
                        "metadata": {"dependencies": info.get("dependencies") or {}}, "signatures": []})
            self.send_error(404)
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if ready_file:
        Path(ready_file).write_text("http://127.0.0.1:%d/api/\n" % httpd.server_address[1])
    httpd.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file")
    parser.add_argument("--versions", action="store_true", help="print name version per collection and exit")
    parser.add_argument("collections", nargs="+")
    args = parser.parse_args()
    if args.versions:
        for name in args.collections:
            print(name, json.loads((collection_root(name) / "MANIFEST.json").read_text())["collection_info"]["version"])
        return
    serve(build_index(args.collections), args.port, args.ready_file)


if __name__ == "__main__":
    main()
