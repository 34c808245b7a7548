"""The spec format as data: every table of a spec file and every key, with its type, default,
allowed values, description and an example.

:func:`~scaleinv.symbolic.spec.parse_spec` and the layers that read the upper tables check
keys against :func:`keys_of`, and the documentation's spec reference is rendered from
:data:`SCHEMA` (``docs/_ext/spec_reference.py``): a key added here is both accepted and
documented. Values are checked where they are read (this module only describes them).

To add a key, add a :class:`Key` to its :class:`Table`; to add a table, a :class:`Table` to
:data:`SCHEMA` (and a line to its ``example``, which the tests load as one spec).

Examples
--------
>>> sorted(keys_of("run"))
['starts', 'steps', 'tol']
>>> table("rules").array, [k.name for k in table("rules").keys if k.required]
(True, ['name'])
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Key", "Table", "SCHEMA", "RULE_NAMES", "keys_of", "table"]
__all__ += ["DEFAULT_BUDGET", "MIN_BUDGET", "MAX_BUDGET", "MAX_STEPS", "MAX_STARTS"]
__all__ += ["LEDGER_BUDGET"]

#: Upper bounds of a run a spec (or ``--steps``) may ask for.
MAX_STEPS = 1_000_000
MAX_STARTS = 10_000_000  # a study runs the chapter's problems from 10**5-10**7 starts
#: Work limits per symbolic decision a spec or ``--budget`` may give, in counted steps (Python
#: calls, see :mod:`scaleinv.symbolic.budget`; about 100 000 a second on the CI machine). The
#: floor catches a budget still written in seconds (the unit before steps).
DEFAULT_BUDGET = 1_000_000
MIN_BUDGET = 10_000
MAX_BUDGET = 1_000_000_000
#: Default work limit of a ledger claim's symbolic decisions (some 40 s on CI); here, not in the
#: ledger, so that the command line names it without importing the analysis.
LEDGER_BUDGET = 4_000_000

#: The rule names a ``[[rules]]`` entry may give (``scaleinv.numeric.rules.REGISTRY``; a test
#: checks they agree).
RULE_NAMES = ("gd", "newton", "ig", "pg", "hig", "bfgs")


@dataclass(frozen=True)
class Key:
    """One key of a spec table.

    ``type`` is the TOML type as a reader would say it; ``default`` is what an absent key
    means ("" for a required key); ``allowed`` lists the values a string key may take.
    """

    name: str
    type: str
    description: str
    default: str = ""
    required: bool = False
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """One table of a spec file: ``[name]``, or ``[[name]]`` when ``array``.

    ``open`` tables (``[params]``, ``[units]``) also take keys the spec itself names (its
    params, inputs); ``keys`` then lists the fixed ones. ``example`` is TOML text. A
    ``variant`` ("indexed") is the same table's keys when the problem is written over an index.
    """

    name: str
    description: str
    keys: tuple[Key, ...]
    example: str
    array: bool = False
    open: bool = False
    required: bool = False
    variant: str = ""


_NUMBER = "number or number expression string"
#: How long each run of a study goes: the same keys in both kinds of ``[study]``.
_STUDY_RUNS = (
    Key("steps", "integer", "The step limit of each run.", "``[run] steps``"),
    Key(
        "tol",
        "number",
        "A run has converged once ``|∂L/∂x|`` is below it.",
        "``[run] tol``, else 1e-6",
    ),
)

SCHEMA: tuple[Table, ...] = (
    Table(
        "",
        "The top level: a title and a description, then the tables below.",
        (
            Key("title", "string", "The report's and tables' title.", "the file's name"),
            Key("description", "string", "A paragraph that opens the report.", '""'),
        ),
        'title = "Optimizer comparison"\ndescription = "P = (x0, x1²), L = |y|²."',
    ),
    Table(
        "problem",
        "The physical function ``P(x)``, the loss ``L(y)`` on its outputs and the target "
        "``y*``. Expressions are strings parsed by an allow-list (never evaluated) in the "
        "inputs and ``[params]``; the loss uses the outputs ``y0, y1, ...``.",
        (
            Key(
                "inputs",
                "string or array of strings",
                "The names of the inputs ``x`` (identifiers, not ``eta`` or ``y0, y1, ...``).",
                required=True,
            ),
            Key(
                "outputs",
                "string or array of strings and numbers",
                "``P(x)``: one expression per output.",
                required=True,
            ),
            Key(
                "loss",
                "string",
                "``L`` in the outputs ``y0, y1, ...`` and params.",
                "``½|y − y*|²``",
            ),
            Key(
                "target",
                "array of numbers or strings",
                "``y*`` of the default loss: one number or param expression per output.",
                "all 0",
            ),
        ),
        '[problem]\ninputs = ["x0", "x1"]\noutputs = ["x0", "x1**2"]\nloss = "y0**2 + y1**2"',
        required=True,
    ),
    Table(
        "problem",
        "An indexed problem: fields on one grid, written once over the index ``i`` (``i, j`` "
        "on a 2-D grid) with integer offsets (``u[i+1]``, ``v[i, j-1]``) and a boundary rule. "
        "Its derivatives stay stencils (offset diagonals with one formula each) and its steps "
        "solve with banded or sparse LU; the loss is ``½|y − y*|²``.",
        (
            Key(
                "inputs",
                "string or array of strings",
                'The fields and the grid, from 0: ``"u[0:n]"`` or '
                '``["u[0:n, 0:n]", "v[0:n, 0:n]"]``.',
                required=True,
            ),
            Key(
                "outputs",
                "string or array of strings",
                "One point formula per output field, over the index and offsets of the fields.",
                required=True,
            ),
            Key(
                "boundary",
                "string or table",
                "How offsets past the grid's ends read: ``periodic``, ``neumann`` (mirrored about "
                'the end point), ``dirichlet`` (0) or ``{kind = "dirichlet", value = 1}`` (one '
                "value, or one per field ``{u = 1, v = 0}``).",
                "periodic",
                allowed=("periodic", "neumann", "dirichlet"),
            ),
            Key(
                "target",
                "number, string or array",
                "``y*`` per output field: a number or a formula of the index.",
                "all 0",
            ),
            Key(
                "target_from",
                "number, string or array",
                "``x*`` per input field (a number or a formula of the index); the target is "
                "then ``y* = P(x*)``, so the answer is known.",
                "none",
            ),
        ),
        '[problem]\ninputs = "u[0:n]"\noutputs = "u[i] + 0.1*(u[i+1] - 2*u[i] + u[i-1])"\n'
        'boundary = "periodic"\ntarget_from = "sin(2*pi*i/n)"\n\n[params]\nn = 64',
        required=True,
        variant="indexed",
    ),
    Table(
        "params",
        "Named constants the expressions may use, each with its value (a positive value "
        "makes the symbol positive). Scalings, the report's ``param`` and ``[units]`` refer to "
        "them by name.",
        (),
        "[params]\nalpha = 10",
        open=True,
    ),
    Table(
        "units",
        "Dimensions for ``scaleinv verify SPEC`` and the report's units verdicts: every input "
        "(required) and any param (the others are dimensionless) by name, as a product of SI "
        'dimension names such as ``"mass*length/time**2"``, ``"angle"`` or ``"1"``. The '
        "outputs' and the loss's dimensions are inferred from ``P`` and ``L`` unless given. "
        "An input or param named like a key below is that symbol, not the key.",
        (
            Key("y0, y1, ...", "string", "The dimension of one output.", "inferred from P"),
            Key("outputs", "array of strings", "The dimensions of all outputs.", "inferred"),
            Key("L, loss", "string", "The dimension of the loss.", "inferred from L"),
            Key(
                "target",
                "string or array of strings",
                "The dimension of the numbers ``y*`` of the default loss (one for all, or one "
                "per output); without it a nonzero numeric target is dimensionless.",
                "dimensionless",
            ),
        ),
        '[units]\nx0 = "length"\nx1 = "length**(1/2)"',
        open=True,
    ),
    Table(
        "run",
        "Where the runs of ``scaleinv run`` and the report start and for how long.",
        (
            Key(
                "starts",
                "array of points (arrays of numbers)",
                f"Start points, one number per input; at most {MAX_STARTS:,}.",
                "one start at 1 for every input",
            ),
            Key("steps", "integer", f"Steps per run, 0 to {MAX_STEPS:,}.", "10"),
            Key("tol", _NUMBER, "Stop a run once ``|∂L/∂x|`` is below it.", "none"),
        ),
        "[run]\nstarts = [[3, 3]]\nsteps = 10\ntol = 1e-12",
    ),
    Table(
        "rules",
        "The update rules to run and compare, one ``[[rules]]`` table each, in the order given.",
        (
            Key("name", "string", "Which rule.", required=True, allowed=RULE_NAMES),
            Key(
                "eta",
                _NUMBER,
                "The step size (every rule but ``bfgs``).",
                "0.01 for gd, 1 for the others",
            ),
            Key("beta", "number", "``hig``: the power of the singular values.", "0.5"),
            Key(
                "rcond",
                "number",
                "``hig``: singular values below ``rcond · σ_max`` are dropped.",
                "max(m, n) × machine epsilon",
            ),
            Key(
                "fallback",
                "string",
                "``pg``: what a sample whose local inverse fails does: stop with that status, "
                "or take the IG step.",
                '"stop"',
                allowed=("stop", "ig"),
            ),
            Key("label", "string", "The name tables and figures show.", "the rule's name"),
        ),
        '[[rules]]\nname = "newton"\neta = "1/3"\n\n[[rules]]\nname = "pg"\neta = 0.3',
        array=True,
    ),
    Table(
        "study",
        "The region ``scaleinv study`` and the report's basin map start from: many starts, "
        "every rule from each.",
        (
            Key(
                "region",
                "array of [low, high] pairs",
                "One interval per input, ``low < high``.",
                required=True,
            ),
            Key(
                "starts",
                "integer",
                "How many starts: a grid for two inputs, evenly spaced for one, else random.",
                "400",
            ),
            *_STUDY_RUNS,
        ),
        "[study]\nregion = [[-3, 3], [-3, 3]]\nstarts = 400\nsteps = 100\ntol = 1e-6",
    ),
    Table(
        "study",
        "An indexed problem's study: every rule from many perturbations of the first "
        "``[run]`` start (a region per input does not scale to a grid). Minima are told apart "
        "by their root-mean-square distance and checked by the inertia of a sparse LDLᵀ.",
        (
            Key("starts", "integer", "How many starts.", "20"),
            Key(
                "spread",
                "number",
                "Each point of each field is moved by a uniform number in [−spread, spread].",
                "0.1",
            ),
            Key("seed", "integer", "The seed of the random perturbations.", "0"),
            *_STUDY_RUNS,
        ),
        "[study]\nstarts = 20\nspread = 0.1\nseed = 0\nsteps = 50\ntol = 1e-8",
        variant="indexed",
    ),
    Table(
        "report",
        "What the report's figures show.",
        (
            Key(
                "param",
                "string",
                "The param whose values ``alphas`` vary.",
                "the only param, if there is one",
            ),
            Key(
                "alphas",
                "array of numbers",
                "Values of ``param``: the report compares the rules at each (a scaling family).",
                "none",
            ),
            Key(
                "sample",
                "array of numbers",
                "The point the landscape figures are centred on.",
                "the first start",
            ),
            Key(
                "window",
                "array of [low, high] pairs",
                "The plotted interval of each input.",
                "around the iterates",
            ),
            Key(
                "periodic",
                "table of numbers or strings",
                'Inputs that are angles, with their period: ``{ ph = "2*pi" }``. The '
                "trajectory figure shows them wrapped into one period around the first start.",
                "none",
            ),
        ),
        '[report]\nparam = "alpha"\nalphas = [1, 10, 100]\nsample = [2, 1.5]',
    ),
    Table(
        "analysis",
        "What the invariance checks and the ledger look at.",
        (
            Key(
                "scalings",
                "array of tables or arrays",
                'Input scalings ``x = S u``: a table ``{x1 = "1/alpha"}`` (the others stay 1) '
                "or one scale per input; numbers, params or new symbols.",
                "one generic scaling ``s_0, s_1, ...``",
            ),
            Key(
                "output_scalings",
                "array of strings or numbers",
                "Output scalings ``y → c y``, one factor each.",
                "none",
            ),
            Key(
                "budget",
                "integer",
                f"The work limit of each symbolic decision in counted steps, {MIN_BUDGET:,} to "
                f"{MAX_BUDGET:,} (a number, not seconds: the same verdicts on every machine).",
                f"{DEFAULT_BUDGET:,}",
            ),
            Key(
                "composition",
                "array of [space, maps] pairs",
                "A chain that composes to ``L(P(x))``: the first pair names the inputs' space "
                "and its symbols, each next one a space and its map from the one before, the "
                'last the loss: ``[["x", ["x"]], ["y", ["x**3"]], ["L", "(y0 - 8)**2/2"]]``.',
                "none",
            ),
            Key(
                "claims",
                "array of strings",
                'Ledger claims the report shows: ids or shell-style patterns (``"crux-*"``).',
                "chosen by topic",
            ),
        ),
        '[analysis]\nscalings = [{ x1 = "1/alpha" }]\noutput_scalings = ["c"]\nbudget = 1000000',
    ),
)


def table(name: str, variant: str = "") -> Table:
    """The :class:`Table` called ``name`` (``""`` is the top level), of ``variant``."""
    for entry in SCHEMA:
        if entry.name == name and entry.variant == variant:
            return entry
    raise KeyError(f"{name} ({variant})" if variant else name)


def keys_of(name: str, variant: str = "") -> frozenset[str]:
    """The keys a table accepts; the top level's include the tables' names. Keys of an open
    table other than its fixed ones are checked by the layer that reads it."""
    found = {k.name for k in table(name, variant).keys}
    if name == "":
        found |= {t.name for t in SCHEMA if t.name}
    return frozenset(found)
