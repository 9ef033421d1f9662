"""`dlmatrix explain`: its flags and its command (runner/cli.py registers both)."""

import shlex
import sys

from ..matrix import load_matrix
from ..progress import say as _say


def add_explain_parser(sub, common):
    explain = sub.add_parser("explain", help="which preprocessing closes the gap between a reproduced error and the "
                                             "published one: evaluate one (row, model) under variants of its "
                                             "recipe on the same images and rank them")
    common(explain)
    explain.add_argument("--env", required=True, help="the row, e.g. torch-current")
    explain.add_argument("--model", required=True, help="one model key of the matrix, e.g. resnet50")
    explain.add_argument("--imagenet", help="ImageNet val folder (required)")
    explain.add_argument("--labels", dest="labels_file", help="labels file for a flat val folder")
    explain.add_argument("--published-labels", metavar="FILE",
                         help="a labels file (val_labels.txt layout: '<file> <wnid>') holding the reference "
                              "evaluation's own top-1 per image, instead of the published number: the variant that "
                              "reproduces them has no errors against them")
    explain.add_argument("--limit", type=int, help="evaluate a deterministic subset of N images")
    explain.add_argument("--weights", choices=["pretrained", "random", "file", "auto"],
                         help="weights source (matrix default); random weights are recentred so their top-1 varies")
    explain.add_argument("--seed", type=int, help="seed for random weights")
    explain.add_argument("--device", help="cpu, cuda or cuda:N (matrix default)")
    explain.add_argument("--threads", type=int, help="intra-op threads on CPU (0 = framework default)")
    explain.add_argument("--weights-cache", help="where frameworks cache downloaded weights")
    explain.add_argument("--pair-axes", type=int, default=3,
                         help="pairs combine this many axes, those that came closest to the published number "
                              "(default 3; 0: no pairs)")
    explain.add_argument("--pair-values", type=int, default=3,
                         help="at most this many variants of each such axis, those that came closest, are paired "
                              "with the other axis's closest one (default 3)")
    explain.add_argument("--backend", default="venv", choices=["venv", "local"],
                         help="venv (the row's environment, built or reused) or local (this interpreter)")
    explain.add_argument("--env-dir", help="where the venv backend keeps environments (default: $DLMATRIX_ENV_DIR, else "
                                       "~/.cache/dlmatrix/envs)")
    explain.add_argument("--reports-dir", default="reports", help="writes REPORTS_DIR/explain/<row>-<model>/")


def cmd_explain(args, out):
    from .run import ExplainFailed, ExplainRequest, run_explain
    from .table import render_text
    from ..cli_checks import check_text_file

    if args.published_labels is not None:
        check_text_file(args.published_labels, "--published-labels")
    matrix = load_matrix(args.matrix)
    request = ExplainRequest(env=args.env, model=args.model, imagenet=args.imagenet, labels_file=args.labels_file,
                             published_labels=args.published_labels, limit=args.limit, weights=args.weights,
                             seed=args.seed, device=args.device, threads=args.threads,
                             weights_cache=args.weights_cache, pair_axes=args.pair_axes, pair_values=args.pair_values)
    try:
        answer, md_path, json_path = run_explain(matrix, request, args.backend, args.env_dir, args.reports_dir, _say,
                                                 command=_command(args))
    except ExplainFailed as exc:
        sys.stderr.write("explain failed: {}\n".format(exc))
        return 1
    out.write(render_text(answer))
    out.write("written to {} and {}\n".format(md_path, json_path))
    return 0


def _command(args):
    """The command line that made it, for the report (flags left at their defaults left out)."""
    words = ["dlmatrix", "explain", "--env", args.env, "--model", args.model]
    for flag, value in (("--matrix", args.matrix if args.matrix != "matrix.toml" else None),
                        ("--imagenet", args.imagenet), ("--labels", args.labels_file),
                        ("--published-labels", args.published_labels), ("--limit", args.limit),
                        ("--weights", args.weights), ("--seed", args.seed), ("--device", args.device),
                        ("--threads", args.threads), ("--pair-axes", args.pair_axes if args.pair_axes != 3 else None),
                        ("--pair-values", args.pair_values if args.pair_values != 3 else None),
                        ("--backend", args.backend if args.backend != "venv" else None)):
        if value is not None:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)
