"""`runner explain`: which preprocessing closes the gap between a reproduced error and the published one.

    grid.py     the single-axis variants around a row's official recipe
    ranking.py  per variant: errors with Wilson intervals, exact McNemar against the official recipe,
                distance to the published number; the ranking and the verdict
    table.py    the table as text, markdown and JSON under reports/explain/<row>-<model>/
    run.py      one cell of suite "explain" in the row's environment (runner/probe/explain_suite.py)
"""
