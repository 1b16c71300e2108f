"""A Debian bookworm base image made with debootstrap, for builds where Docker Hub is out of reach.

bookworm's python3 is 3.11, which is what the service needs; docker/Dockerfile only asks of its
BASE_IMAGE a `python3` with the venv module. The Debian mirror is read from this machine's apt
configuration at run time, never written down here.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from deploy.errors import ToolError

PACKAGES = ("python3", "python3-venv")
# Files a server image never needs; removing them keeps the imported layer small.
_PRUNE = ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt", "var/lib/apt/lists")


def debian_mirror(apt_dir: Path = Path("/etc/apt"), suite: str = "bookworm") -> str:
    """The first apt source that serves `suite` (deb822 .sources files, then sources.list)."""
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, flags=re.MULTILINE))
            if suite in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                match = re.match(rf"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+{suite}\s", line.strip() + " ")
                if match:
                    return match.group(1)
    raise ToolError(f"no apt source for {suite} in {apt_dir}: cannot debootstrap")


def build_debian_base(tool: str, ref: str, workdir: Path, *, mirror: str | None = None,
                      suite: str = "bookworm", log=print) -> str:
    """debootstrap a minimal `suite` with python3 into `workdir` and import it as image `ref`."""
    mirror = mirror or debian_mirror(suite=suite)
    rootfs = workdir / "rootfs"
    log(f"base: debootstrap {suite} ({', '.join(PACKAGES)}) from {mirror}")
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(rootfs), mirror],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise ToolError(f"debootstrap failed (exit {result.returncode}): {tail[0]}")
    for relative in _PRUNE:
        subprocess.run(["rm", "-rf", str(rootfs / relative)], check=False)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run([tool, "import", "-", ref], stdin=tar.stdout, capture_output=True, text=True)
    tar.stdout.close()
    tar.wait()
    subprocess.run(["rm", "-rf", str(rootfs)], check=False)
    if imported.returncode != 0 or tar.returncode != 0:
        raise ToolError(f"importing the base image failed: {imported.stderr.strip()[-200:]}")
    log(f"base: imported {ref}")
    return ref


def recipe_key(suite: str = "bookworm") -> str:
    """A short hash of what the base is made of: another recipe gets another image name."""
    recipe = {"suite": suite, "variant": "minbase", "packages": PACKAGES, "prune": _PRUNE}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def base_ref(suite: str = "bookworm") -> str:
    """The local image name of the base built by this recipe (reused while the recipe is unchanged)."""
    return f"localhost/debian-python:{suite}-{recipe_key(suite)}"


def ensure_debian_base(tool: str, workdir: Path, *, suite: str = "bookworm", log=print) -> str:
    """The base image for this recipe: reused from the tool's storage, or debootstrapped once."""
    ref = base_ref(suite)
    found = subprocess.run([tool, "image", "inspect", ref], capture_output=True)
    if found.returncode == 0:
        log(f"base: reusing {ref}")
        return ref
    workdir.mkdir(parents=True, exist_ok=True)
    return build_debian_base(tool, ref, workdir, suite=suite, log=log)
