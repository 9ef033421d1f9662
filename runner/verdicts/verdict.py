"""One verdict: a pair of results (or a result and its published number), what was decided, and why."""

from dataclasses import asdict, dataclass, field

from .decide import CHANGES, REGRESSIONS


@dataclass
class Verdict:
    kind: str  # error, throughput, cold_start, drift, published, sequence
    framework: str
    model: str
    engine: str
    before: str  # environment (None for a published-vs-reproduced check)
    after: str
    before_version: str
    after_version: str
    relation: str  # consecutive, oldest -> newest, baseline, published, sequence
    verdict: str
    summary: str = ""
    batch_size: int = None
    p_value: float = None
    q_value: float = None
    evidence: dict = field(default_factory=dict)
    cells: tuple = ()

    @property
    def regression(self):
        return self.verdict in REGRESSIONS

    @property
    def is_finding(self):
        return self.verdict in REGRESSIONS or self.verdict in CHANGES or self.verdict == "differs"

    def line(self):
        where = self.after if self.before is None else "{} -> {}".format(self.before, self.after)
        what = self.kind.replace("_", " ") + ("" if self.batch_size is None else " batch {}".format(self.batch_size))
        engine = " [{}]".format(self.engine) if self.engine else ""
        return "{}: {} {}{} {}: {}".format(self.verdict.upper(), self.framework, self.model, engine,
                                          "{} ({})".format(what, where), self.summary)

    def as_dict(self):
        data = asdict(self)
        data["regression"] = self.regression
        data["cells"] = list(self.cells)
        return data
