import platform

from runner.probe.provenance import host_info, installed_packages, probe_source_sha256, python_info


def test_installed_packages_sees_numpy_with_its_version():
    import numpy

    packages = installed_packages()
    assert packages["numpy"] == numpy.__version__


def test_python_and_host():
    assert python_info()["version"] == platform.python_version()
    info = host_info()
    assert info["cpu_count"] >= 1 and info["cpu_model"]


def test_probe_hash_is_stable_hex():
    first = probe_source_sha256()
    assert first == probe_source_sha256() and len(first) == 64


def test_nvidia_driver_says_why_when_unavailable():
    from runner.probe.provenance import nvidia_driver

    info = nvidia_driver()
    assert info["driver"] or info["unavailable"]
