"""A bisection's answer as files a user keeps: reports/<run>/bisect-<package>-<good>-<bad>-<model>-<suite>.{json,md}."""

import io

from .storage import make_folder, write_json, write_text

BISECT_SCHEMA_VERSION = 1


def render_bisect(answer):
    out = io.StringIO()
    w = out.write
    w("# Bisect: {package} between {good} and {bad} ({framework} {model}, {suite} suite)\n\n".format(**answer))
    w("**{}**\n\n".format(answer["conclusion"]))
    w("Criterion: a release is good while its result is {} the good row's ({} suite); every probe holds the good "
      "row's other pins unless the matrix's [bisect] rule moves them.\n\n".format(
          {"identical": "bit-identical to", "close": "numerically close to"}.get(answer["criterion"], "the same as")
          if answer["suite"] == "drift" else "not slower than" if answer["suite"] == "throughput" else "the same as",
          answer["suite"]))
    w("Releases in range: {}. Environments built: {} ({:.0f} s); the rest reused.\n\n".format(
        ", ".join(answer["candidates"]), answer["environments_built"], answer["build_s"]))
    w("| Release | Environment | Outcome | Verdict | Evidence | Pins moved from {} |\n|---|---|---|---|---|---|\n".format(
        answer["good"]))
    for probe in answer["probes"] + [dict(answer["bad_row"], version=answer["bad_row"]["version"] + " (the row)")]:
        w("| {} | {} | {} | {} | {} | {} |\n".format(
            probe["version"], probe["environment"], probe["outcome"], probe["verdict"] or "-",
            (probe["summary"] or "-").replace("|", "\\|"), probe["moved"] or "-"))
    w("\nThe rows differ in: {}.\n".format("; ".join(answer["rows_differ_in"])))
    return out.getvalue()


def write_bisect(answer, report_dir):
    report_dir = make_folder(report_dir, flag="--reports-dir")
    stem = "bisect-{package}-{good}-{bad}-{model}-{suite}".format(**answer)
    json_path, md_path = report_dir / (stem + ".json"), report_dir / (stem + ".md")
    write_json(json_path, dict(answer, schema_version=BISECT_SCHEMA_VERSION), flag="--reports-dir")
    write_text(md_path, render_bisect(answer), flag="--reports-dir")
    return md_path, json_path
