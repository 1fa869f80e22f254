"""Every public function of the engine states its types (issue 24, item 4): its parameters and its
return value are annotated, so a reader sees what goes in and comes out without running it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def unannotated(path: Path) -> list[str]:
    """The public functions and methods of a module (not starting with _, __init__ included) with a
    parameter or the return value not annotated (self, cls and __init__'s return excepted)."""
    out = []

    def visit(body, prefix=""):
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith("_") and node.name != "__init__":
                    continue
                a = node.args
                params = [p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")]
                params += [p for p in (a.vararg, a.kwarg) if p is not None]
                missing = [p.arg for p in params if p.annotation is None]
                if node.returns is None and node.name != "__init__":
                    missing.append("return")
                if missing:
                    out.append(f"{prefix}{node.name}: {', '.join(missing)}")

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return out


def test_every_public_engine_function_is_annotated():
    missing = {}
    for path in sorted((ROOT / "engine").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        missing.update({f"{name}: {m}": None for m in unannotated(path)})
    assert not missing, "\n".join(missing)
