"""The cores a cell's decoders and threads are sized by: affinity and a cgroup's CPU quota.

The cgroup files are read on made-up trees first (both cgroup versions, a container's mount, a limit on
a parent), then for real: this process is put in a cgroup with a quota of its own, where the machine
lets a test make one (root and a writable cpu controller).
"""

import json
import os
import subprocess
import sys
import uuid

import pytest

from runner.probe import cores
from runner.probe.error_suite import input_workers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fake_proc(tmp_path, cgroup, mounts):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text("".join(
        "{} 1 0:{} {} {} rw,relatime - {} {} {}\n".format(30 + n, n, root, point, fstype, fstype, options)
        for n, (root, point, fstype, options) in enumerate(mounts)))
    return str(proc)


def write(folder, **files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text + "\n")


def test_cgroup_v2_takes_the_tightest_limit_from_the_process_cgroup_up(tmp_path):
    mount = tmp_path / "sys fs cgroup"  # a space: mountinfo escapes it as \040
    write(mount / "kubepods" / "pod1", cpu_max="250000 100000")
    write(mount / "kubepods" / "pod1" / "box", cpu_max="max 100000")
    proc = fake_proc(tmp_path, "0::/kubepods/pod1/box\n", [("/", str(mount).replace(" ", "\\040"), "cgroup2", "rw")])
    assert cores.cpu_quota(proc) == 2.5
    write(mount / "kubepods" / "pod1" / "box", cpu_max="150000 100000")
    assert cores.cpu_quota(proc) == 1.5


def test_cgroup_v2_without_a_limit_anywhere_is_no_quota(tmp_path):
    mount = tmp_path / "cg"
    write(mount / "user.slice", cpu_max="max 100000")
    proc = fake_proc(tmp_path, "0::/user.slice\n", [("/", str(mount), "cgroup2", "rw")])
    assert cores.cpu_quota(proc) is None


def test_cgroup_v1_in_a_container_reads_the_mount_of_its_own_cgroup(tmp_path):
    """docker on cgroup v1 without a cgroup namespace: /proc/self/cgroup names /docker/ID, and the
    container's cpu mount starts at that cgroup."""
    mount = tmp_path / "cpu,cpuacct"
    write(mount, cpu_cfs_quota_us="300000", cpu_cfs_period_us="100000")
    memory = tmp_path / "memory"
    write(memory, cpu_cfs_quota_us="100000", cpu_cfs_period_us="100000")  # not the cpu controller's: not read
    proc = fake_proc(tmp_path, "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
                     [("/docker/abc", str(mount), "cgroup", "rw,cpu,cpuacct"),
                      ("/docker/abc", str(memory), "cgroup", "rw,memory")])
    assert cores.cpu_quota(proc) == 3.0


def test_cgroup_v1_quota_of_minus_one_is_none_and_unreadable_proc_is_none(tmp_path):
    mount = tmp_path / "cpu"
    write(mount / "a", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    proc = fake_proc(tmp_path, "1:cpu:/a\n", [("/", str(mount), "cgroup", "rw,cpu")])
    assert cores.cpu_quota(proc) is None
    assert cores.cpu_quota(str(tmp_path / "nowhere")) is None


@pytest.mark.parametrize("affinity, quota, usable", [(16, None, 16), (16, 4.0, 4), (16, 1.5, 2), (16, 0.2, 1),
                                                     (2, 6.0, 2)])
def test_usable_cores_is_the_affinity_lowered_by_the_quota_rounded_up(monkeypatch, affinity, quota, usable):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr(cores, "cpu_quota", lambda proc="/proc/self": quota)
    assert cores.usable_cores() == usable


def test_a_cells_decoders_under_a_quota_are_counted_by_it(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(cores, "cpu_quota", lambda proc="/proc/self": 11.5)
    assert input_workers({"workers": 0}, "cuda") == 12 and input_workers({"workers": 0}, "cpu") == 8


READ = ("import json, sys; sys.path.insert(0, sys.argv[1]); from runner.probe import cores; "
        "print(json.dumps([cores.cpu_quota(), cores.usable_cores(), len(__import__('os').sched_getaffinity(0))]))")


def writable_cpu_cgroup():
    """(folder, version) of a cgroup a test may make under this machine's cpu controller, or skip."""
    if os.geteuid() != 0:
        pytest.skip("making a cgroup needs root")
    v1 = "/sys/fs/cgroup/cpu"
    if os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")) and os.access(v1, os.W_OK):
        return v1, 1
    v2 = "/sys/fs/cgroup"
    try:
        with open(os.path.join(v2, "cgroup.subtree_control")) as handle:
            if "cpu" in handle.read().split() and os.access(v2, os.W_OK):
                return v2, 2
    except OSError:
        pass
    pytest.skip("no writable cpu controller of cgroup v1 or v2 here")


@pytest.mark.parametrize("parent_cores, child_cores, expected", [(1.0, None, 1.0), (3.0, 1.5, 1.5)])
def test_a_process_in_a_real_cgroup_with_a_quota_counts_it(parent_cores, child_cores, expected):
    mount, version = writable_cpu_cgroup()
    parent = os.path.join(mount, "dlmatrix-test-{}".format(uuid.uuid4().hex[:8]))
    child = os.path.join(parent, "cell")
    os.mkdir(parent)
    try:
        os.mkdir(child)
        if version == 2:  # the child's cpu.max appears once its parent hands the controller down
            with open(os.path.join(parent, "cgroup.subtree_control"), "w") as handle:
                handle.write("+cpu")
        for folder, quota in ((parent, parent_cores), (child, child_cores)):
            if quota is None:
                continue
            if version == 1:
                with open(os.path.join(folder, "cpu.cfs_quota_us"), "w") as handle:
                    handle.write(str(int(quota * 100000)))
            else:
                with open(os.path.join(folder, "cpu.max"), "w") as handle:
                    handle.write("{} 100000".format(int(quota * 100000)))
        # The process joins the child cgroup before it reads: preexec_fn runs in it between fork and exec.
        def join():
            with open(os.path.join(child, "cgroup.procs"), "w") as handle:
                handle.write(str(os.getpid()))
        out = subprocess.run([sys.executable, "-c", READ, ROOT], preexec_fn=join, check=True,
                             stdout=subprocess.PIPE, universal_newlines=True).stdout
        quota, usable, affinity = json.loads(out)
        assert quota == expected
        assert usable == min(affinity, int(-(-expected // 1)))
    finally:
        for folder in (child, parent):
            if os.path.isdir(folder):
                os.rmdir(folder)  # empty once its process ended


def test_a_mount_or_cgroup_named_outside_the_locales_encoding_is_read_through(tmp_path):
    """One mount anywhere on the host named in Latin-1 (here the cgroup mount itself, and an unrelated disk)
    must neither stop the reading nor lose the folder: every cell sizes its decoders from this."""
    mount = tmp_path / os.fsdecode(b"cg-caf\xe9")
    write(mount / os.fsdecode(b"box-\xff"), cpu_max="150000 100000")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_bytes(b"0::/box-\xff\n")
    (proc / "mountinfo").write_bytes(
        b"50 23 8:17 / /media/caf\xe9 rw,relatime - vfat /dev/sdb1 rw\n"
        b"31 23 0:28 / " + os.fsencode(str(mount)) + b" rw,relatime - cgroup2 cgroup2 rw\n")
    assert cores.cpu_quota(str(proc)) == 1.5
