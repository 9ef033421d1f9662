"""Cell containers and least privilege, against a real Docker engine: dropped capabilities, no network
for a cell (a networked container only to fetch pretrained weights), a read-only image, no setuid programs.

Without an engine these tests skip, unless DLMATRIX_REQUIRE_DOCKER=1 (CI sets it).
"""

import errno
import fcntl
import json
import os
import socket
import struct
import threading
from pathlib import Path

import pytest

from runner.backends.docker_cell import CROPS_IN_CONTAINER, PIDS_LIMIT, hardened, run_container
from runner.backends.docker_fetch import MARKER_FOLDER

from .dockers import CURRENT, HISTORICAL, leftover_containers, results_of, run_cli
from .faults import fault_case


SETTINGS_LINE = "container settings (from the engine): "


def engine_settings_in(log_path):
    """The settings of every container a cell ran in, as the engine held them (the cell's log keeps them)."""
    return [json.loads(line[len(SETTINGS_LINE):]) for line in Path(log_path).read_text().splitlines()
            if line.startswith(SETTINGS_LINE)]


def assert_least_privilege(seen, network):
    assert seen["cap_drop"] == ["ALL"] and not seen["cap_add"] and seen["privileged"] is False, seen
    assert "no-new-privileges" in seen["security_opt"], seen
    assert seen["pids_limit"] == PIDS_LIMIT and seen["read_only_rootfs"] is True, seen
    assert list(seen["tmpfs"]) == ["/tmp"] and seen["network_mode"] == network, seen
    assert seen["memory"] == seen["memory_swap"] == 16 * 1024 ** 3, seen  # the test matrix's memory_limit "16g"
    assert seen["user"] and not seen["user"].startswith("0:"), seen


@pytest.mark.slow
def test_every_cell_container_had_least_privilege_and_no_network(docker_run):
    """Read from the engine for each real cell's container before it was removed."""
    for key, result in docker_run["results"].items():
        [seen] = engine_settings_in(result["provenance"]["runner"]["log"])
        assert_least_privilege(seen, network="none")
        # Random weights: no weights cache; writable are the cell's own work folder and, for an error cell, the
        # crop cache (at its own place in the container, whoever owns the host's folder).
        work = [path for path in seen["writable_mounts"] if path != CROPS_IN_CONTAINER]
        assert len(work) == 1 and work[0].startswith(str(docker_run["work"] / "results" / "docker") + os.sep), key
        assert (CROPS_IN_CONTAINER in seen["writable_mounts"]) == (key[2] == "error"), key
        if key[2] == "error":
            assert result["metrics"]["crop_cache"]["status"] in ("hit", "built"), result["metrics"]["crop_cache"]


# Run in a cell-like container and in a plain one: what a cell might try, and what came of each try.
ATTEMPTS = r"""
import json, socket, subprocess, sys, threading
seen = {}
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
    seen["connect"] = "connected"
except OSError as exc:
    seen["connect"] = exc.errno
for path in ("/etc/dlmatrix-was-here", "/var/tmp/dlmatrix-was-here", "/tmp/dlmatrix-was-here"):
    try:
        open(path, "w").close()
        seen[path] = "written"
    except OSError as exc:
        seen[path] = exc.errno
seen["euid_in_setuid_root_id"] = subprocess.run(["/usr/local/bin/id-suid", "-u"], stdout=subprocess.PIPE,
                                                universal_newlines=True).stdout.strip()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
seen["CapBnd"], seen["NoNewPrivs"] = status["CapBnd"].strip(), status["NoNewPrivs"].strip()
threading.stack_size(1 << 16)
stop, started = threading.Event(), 0
try:
    for _ in range(int(sys.argv[3]) + 100):
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError:
    pass
stop.set()
seen["threads"] = started
print(json.dumps(seen))
"""


def accept_until_closed(listener):
    while True:
        try:
            listener.accept()[0].close()
        except OSError:  # closed at the end of the test
            return


def bridge_gateway(engine):
    """The host's address on the default bridge: where a container with a network reaches this host."""
    bridge = engine.networks.get("bridge").attrs
    config = bridge["IPAM"]["Config"][0]
    if "Gateway" in config:
        return config["Gateway"]
    # A daemon's first start leaves Gateway out of the default bridge's IPAM (moby/moby#26799): a fresh CI
    # machine's always. The bridge interface holds the address (SIOCGIFADDR).
    name = bridge["Options"]["com.docker.network.bridge.name"].encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15]))
    return socket.inet_ntoa(request[20:24])


@pytest.mark.slow
def test_a_cell_container_cannot_reach_the_network_write_its_image_or_gain_privileges(docker_run, engine, tmp_path):
    image = docker_run["results"][(HISTORICAL, "resnet50", "error")]["provenance"]["runner"]["environment"]["image"]
    # A setuid-root program in a layer on top of the cell's image (the image itself has none left).
    maker = engine.containers.run(image, ["sh", "-c", "cp /usr/bin/id /usr/local/bin/id-suid && chmod 4755 "
                                          "/usr/local/bin/id-suid"], user="0:0", detach=True)
    maker.wait()
    suid_image = maker.commit("dlmatrix-test/suid", str(os.getpid()))
    maker.remove()
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    threading.Thread(target=accept_until_closed, args=(listener,), daemon=True).start()
    gateway = bridge_gateway(engine)
    command = ["python", "-c", ATTEMPTS, gateway, str(listener.getsockname()[1]), str(PIDS_LIMIT)]
    try:
        with open(tmp_path / "cell.log", "wb") as log:
            cell = run_container(engine, suid_image.id, command, dict(hardened("16g"), user="1000:1000"), log, 300,
                                 set())
        plain = json.loads(engine.containers.run(suid_image.id, command, user="1000:1000", remove=True).decode())
    finally:
        listener.close()
        engine.images.remove(suid_image.id, force=True)
    assert cell.returncode == 0 and not cell.error, cell.output
    confined = json.loads(cell.stdout.strip().splitlines()[-1])
    [seen] = engine_settings_in(tmp_path / "cell.log")
    assert_least_privilege(seen, network="none")
    # Each attempt succeeds in a plain container (so each refusal is the settings' doing) ...
    assert plain["connect"] == "connected" and plain["/var/tmp/dlmatrix-was-here"] == "written"
    assert plain["euid_in_setuid_root_id"] == "0" and plain["threads"] == PIDS_LIMIT + 100
    # ... and fails in the cell's.
    assert confined["connect"] == errno.ENETUNREACH
    assert confined["/etc/dlmatrix-was-here"] == confined["/var/tmp/dlmatrix-was-here"] == errno.EROFS
    assert confined["/tmp/dlmatrix-was-here"] == "written"  # its tmpfs scratch
    assert confined["euid_in_setuid_root_id"] == "1000"  # no-new-privileges: the setuid bit is ignored
    assert confined["CapBnd"] == "0000000000000000" and confined["NoNewPrivs"] == "1"
    assert PIDS_LIMIT - 10 < confined["threads"] < PIDS_LIMIT
    for case, got in (("a cell reaching the network", "connect: errno {} (ENETUNREACH)".format(confined["connect"])),
                      ("a cell writing to its image (`/etc`, `/var/tmp`)", "open: errno {} (EROFS)".format(
                          confined["/etc/dlmatrix-was-here"])),
                      ("a cell running a setuid-root program", "euid stays {}; capability bounding set {}, "
                       "NoNewPrivs {}".format(confined["euid_in_setuid_root_id"], "empty" if int(
                           confined["CapBnd"], 16) == 0 else confined["CapBnd"], confined["NoNewPrivs"])),
                      ("a cell starting processes without end", "{} threads, then the pids limit ({})".format(
                          confined["threads"], PIDS_LIMIT))):
        fault_case(case, "refused by the container's settings (docker backend): all capabilities dropped, "
                   "no-new-privileges, read-only root, network none, pids limit", got, group="containers")


@pytest.mark.slow
def test_no_setuid_or_setgid_program_is_left_in_a_built_image(docker_run, engine):
    find = ["find", "/", "-xdev", "-type", "f", "-perm", "/6000"]
    assert "/usr/bin/su" in engine.containers.run("dlmatrix-base:bookworm", find, remove=True).decode().split()
    for env in (HISTORICAL, CURRENT):
        image = docker_run["results"][(env, "resnet50", "error")]["provenance"]["runner"]["environment"]["image"]
        assert engine.containers.run(image, find, user="0:0", remove=True).decode().split() == [], env


def reachable(host, port=443, timeout_s=10):
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_pretrained_weights_come_from_a_networked_fetch_and_the_cells_run_offline(docker_run, engine, sample,
                                                                                   tmp_path):
    """Connected host: one fetch, then both cells offline from the cache. Offline host: each cell fails saying why."""
    from runner.frameworks import FRAMEWORKS

    work, cache = docker_run["work"], tmp_path / "weights"
    code, out = run_cli(["run", "--matrix", str(docker_run["matrix"]), "--backend", "docker", "--weights", "pretrained",
                         "--weights-cache", str(cache), "--imagenet", str(sample), "--env", HISTORICAL, "--model",
                         "resnet50", "--suite", "error", "--suite", "throughput", "--results-dir",
                         str(work / "results"), "--reports-dir", str(work / "reports"), "--run", "pretrained"])
    results = results_of(work / "results" / "pretrained")
    online = reachable(FRAMEWORKS["gluoncv"].weights_host)
    fetches = 0
    for suite in ("error", "throughput"):
        result = results[(HISTORICAL, "resnet50", suite)]
        log = Path(result["provenance"]["runner"]["log"])
        containers = engine_settings_in(log)
        fetch = [seen for seen in containers if seen["network_mode"] != "none"]
        for seen in fetch:  # the fetch: a cell's settings, but the network, and only the cache to write
            assert_least_privilege(seen, network="bridge")
            assert seen["writable_mounts"] == [str(cache)]
        fetches += len(fetch)
        if online:
            assert result["status"] == "ok", result["reason"]
            assert_least_privilege(containers[-1], network="none")
            assert str(cache) in containers[-1]["writable_mounts"]
        else:
            assert result["status"] == "failed" and len(containers) == 1 and len(fetch) == 1, log.read_text()
            assert result["reason"].startswith("fetching the pretrained weights before the cell (a container with "
                                               "the network; the cell has none) failed: pretrained weights for "), \
                result["reason"]
            assert "could not be loaded" in result["reason"] and "WEIGHTS=random" in result["reason"]
            assert "runner.probe" not in log.read_text()  # the cell itself never started
    assert code == (0 if online else 1), out
    assert fetches == (1 if online else 2)  # once per image and model, when it succeeds
    assert len(list((cache / MARKER_FOLDER).glob("*.json"))) == (1 if online else 0)
    assert not leftover_containers(engine)
