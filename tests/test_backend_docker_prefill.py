"""The crop cache prefill (runner/prefill.py) through the docker backend: the prefill is a container of its
own with the crop cache mounted, and GluonCV's recipe resizes with MXNet inside it, so the entry it writes
is the one the later cell's container reads, with the predictions that cell makes from its own decoding."""

import pytest

from .dockers import HISTORICAL, leftover_containers, results_of, run_cli
from .matrices import FAST_SUITES, write_matrix

ROW = HISTORICAL  # its image is conftest.py docker_run's, reused by content hash


@pytest.mark.slow
def test_a_docker_run_prefills_inception_beside_resnet101_and_inception_reads_it(engine, sample, tmp_path,
                                                                               monkeypatch, capsys):
    matrix = write_matrix(tmp_path, suites=FAST_SUITES.replace("[suites.error]\n", "[suites.error]\nprefill = true\n"))
    common = ["run", "--matrix", str(matrix), "--backend", "docker", "--weights", "random", "--imagenet", str(sample),
              "--env", ROW, "--suite", "error", "--reports-dir", str(tmp_path / "reports")]
    monkeypatch.setenv("DLMATRIX_CACHE", str(tmp_path / "crops"))
    code, out = run_cli(common + ["--model", "resnet50", "--model", "resnet101", "--model", "inception_v3",
                                  "--results-dir", str(tmp_path / "results"), "--run", "p"])
    said = capsys.readouterr().err
    assert code == 0, out + said
    assert "crop cache prefill for {} inception_v3 (beside resnet101): decoded with".format(ROW) in said, said
    results = {model: r for (_, model, _), r in results_of(tmp_path / "results" / "p").items()}
    assert {m: r["metrics"]["crop_cache"]["status"] for m, r in results.items()} == \
        {"resnet50": "built", "resnet101": "hit", "inception_v3": "hit"}
    assert not leftover_containers(engine)

    monkeypatch.setenv("DLMATRIX_CACHE", str(tmp_path / "own-crops"))
    code, out = run_cli(common + ["--model", "inception_v3", "--results-dir", str(tmp_path / "alone"), "--run", "a"])
    assert code == 0, out
    alone = results_of(tmp_path / "alone" / "a")[(ROW, "inception_v3", "error")]
    assert alone["metrics"]["crop_cache"]["status"] == "built"
    assert (tmp_path / "alone" / "a" / alone["files"]["predictions"]).read_text() == \
        (tmp_path / "results" / "p" / results["inception_v3"]["files"]["predictions"]).read_text()
