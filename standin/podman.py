"""A podman configuration confined to one folder, for local pipeline runs and the image tests.

podman reads its settings from the files CONTAINERS_CONF and CONTAINERS_STORAGE_CONF name; pointing
both into a folder keeps every image, layer and container of a local run there, away from the
user's own podman storage, and lets a second run (or a second test) reuse the layers the first one
built. The settings are the ones that work for root in a container-in-a-container sandbox as well as
on a workstation: runc when it is installed (crun rejects a hybrid cgroup layout), cgroupfs (no
systemd to delegate cgroups to), the host network (the local registry and the moto server listen on
127.0.0.1), a file event log, and explicit ulimits (the sandbox's own may be lower than podman's
defaults ask for).
"""

from __future__ import annotations

import shutil
from pathlib import Path

_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "host"
[engine]
{runtime}cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# podman build reads its isolation from this variable; chroot needs no user namespace or cgroup setup.
BUILD_ISOLATION = "chroot"


def sandbox_env(root: Path, insecure_registries: list[str] = ()) -> dict[str, str]:
    """Write containers.conf, storage.conf and registries.conf under `root`; return the variables.

    `insecure_registries` (HOST:PORT on 127.0.0.1) are reached over plain HTTP. Logins go to an auth
    file in the folder, never the user's. Idempotent: a second call with the same folder reuses its
    storage (and so its image cache).
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    runtime = 'runtime = "runc"\n' if shutil.which("runc") else ""
    containers = root / "containers.conf"
    containers.write_text(_CONTAINERS_CONF.format(runtime=runtime))
    storage = root / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\nrunroot = "{root / "run"}"\n'
    )
    auth = root / "auth.json"
    if not auth.exists():
        auth.write_text("{}\n")  # podman refuses a REGISTRY_AUTH_FILE that does not exist
    registries = root / "registries.conf"
    registries.write_text("".join(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n'
                                  for host in insecure_registries))
    return {
        "CONTAINERS_CONF": str(containers),
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINERS_REGISTRIES_CONF": str(registries),
        "REGISTRY_AUTH_FILE": str(auth),
        "BUILDAH_ISOLATION": BUILD_ISOLATION,
    }
