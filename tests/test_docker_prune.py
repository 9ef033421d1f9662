"""`dlmatrix prune --images`: which docker images no build will use again (runner/backends/docker_prune.py).

The choice is tested on its own; the removal on a real engine with tiny images of no layers, tagged as the
backend tags its builds. Without an engine that part skips, unless DLMATRIX_REQUIRE_DOCKER=1 (CI sets it).
"""

import io
import json
import os
import time

import pytest

from runner.backends.docker_prune import Tagged, prune_images, stale

from .conftest import docker_client_or_skip


def tagged(tag, created, base="dlmatrix-base:bookworm", image_id=None):
    row = tag.split("/", 1)[1].rsplit(":", 1)[0]
    return Tagged(tag=tag, row=row, created=created, base=base, image_id=image_id or tag, size=10 ** 9)


def test_the_newest_image_of_each_row_and_base_stays_and_rows_gone_from_the_matrix_go():
    images = [
        tagged("dlmatrix/mxnet-1.4:aaa", "2026-11-30T08:00:00Z"),
        tagged("dlmatrix/mxnet-1.4:bbb", "2026-11-30T09:00:00Z"),
        tagged("dlmatrix/mxnet-1.4:ccc", "2026-11-30T07:00:00Z", base="nvidia/cuda:10.0-cudnn7-runtime-ubuntu18.04"),
        tagged("dlmatrix/old-row:ddd", "2026-11-30T10:00:00Z"),
        tagged("dlmatrix/bisect-mxnet-1.6.0-from-mxnet-1.5-123:eee", "2026-11-30T06:00:00Z"),
        tagged("dlmatrix/bisect-mxnet-1.6.0-from-mxnet-1.5-123:fff", "2026-11-30T05:00:00Z"),
    ]
    gone = [image.tag for image in stale(images, {"mxnet-1.4"})]
    # the CPU build's older image; the only CUDA build stays; a row the matrix lost; bisect's rows are left
    assert gone == ["dlmatrix/mxnet-1.4:aaa", "dlmatrix/old-row:ddd"]
    with_bisect = [image.tag for image in stale(images, {"mxnet-1.4"}, bisect=True)]
    assert with_bisect == ["dlmatrix/bisect-mxnet-1.6.0-from-mxnet-1.5-123:fff", "dlmatrix/mxnet-1.4:aaa",
                           "dlmatrix/old-row:ddd"]


@pytest.fixture(scope="module")
def client():
    return docker_client_or_skip()


def build(client, tag, build_dir, base):
    """An image of no layers (FROM scratch), tagged like a build, with the build record the backend writes."""
    dockerfile = "FROM scratch\nLABEL dlmatrix.prune-test={}\n".format(tag).encode()
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    row, digest = tag.split("/", 1)[1].rsplit(":", 1)
    (build_dir / "{}-{}.json".format(row, digest)).write_text(json.dumps({"base": base, "tag": tag}))
    return image


def test_prune_removes_stale_tags_and_their_records_on_a_real_engine(client, tmp_path):
    row = "prune-test-{}".format(os.getpid())
    tags = ["dlmatrix/{}:{}".format(row, digest) for digest in ("000000000001", "000000000002")]
    lost = "dlmatrix/{}-gone:000000000003".format(row)
    try:
        build(client, tags[0], tmp_path, "dlmatrix-base:bookworm")
        time.sleep(1.1)  # the engine's creation times must differ
        build(client, tags[1], tmp_path, "dlmatrix-base:bookworm")
        build(client, lost, tmp_path, "dlmatrix-base:bookworm")
        said, ours = [], lambda image: image.row.startswith(row)  # this engine's other images are not the test's
        assert prune_images(client, tmp_path, [row], False, True, said.append, among=ours)[0] == 2  # --dry-run
        assert {t for image in client.images.list() for t in image.tags} >= set(tags + [lost])
        removed, _ = prune_images(client, tmp_path, [row], False, False, said.append, among=ours)
        assert removed == 2 and said[-2:] == ["removed {} (0.0 GB)".format(lost), "removed {} (0.0 GB)".format(tags[0])]
        left = {t for image in client.images.list() for t in image.tags}
        assert tags[1] in left and tags[0] not in left and lost not in left
        assert not (tmp_path / "{}-000000000001.json".format(row)).exists()
        assert (tmp_path / "{}-000000000002.json".format(row)).exists()
    finally:
        for tag in tags + [lost]:
            try:
                client.images.remove(tag, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


def test_prune_images_without_an_engine_is_one_message(tmp_path, monkeypatch, capsys):
    pytest.importorskip("docker")
    from runner.cli import main

    monkeypatch.setenv("DOCKER_HOST", "unix://{}".format(tmp_path / "no-engine.sock"))
    assert main(["prune", "--images", "--env-dir", str(tmp_path)], out=io.StringIO()) == 2
    assert "prune --images (leave out --images to prune only the environments): no Docker engine answers" in \
        capsys.readouterr().err


@pytest.mark.parametrize("command, who", [
    (["docker-base"], "docker-base"),
    (["run", "--backend", "docker", "--env", "mxnet-1.5", "--model", "mobilenet", "--suite", "throughput",
      "--weights", "random"], "the docker backend"),
])
def test_every_docker_command_without_an_engine_gives_the_same_message(tmp_path, monkeypatch, capsys, command, who):
    pytest.importorskip("docker")
    from runner.cli import main

    monkeypatch.setenv("DOCKER_HOST", "unix://{}".format(tmp_path / "no-engine.sock"))
    folders = ["--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")] \
        if command[0] == "run" else []
    assert main(command + folders, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "error: {}: no Docker engine answers (".format(who) in err and "docker/engine-up.sh" in err
    assert "Traceback" not in err
