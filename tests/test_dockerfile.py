"""The Dockerfile installs what the README says: the same pip install commands (package specs and extras, in order),
differing only in pip's index and quiet/cache flags; its base and torch index are build arguments (CPU by default),
its entry point is the CLI, and .dockerignore keeps environments and run outputs out without dropping what the
build needs. Nothing here needs docker: the files are parsed."""
import fnmatch
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
FLAGS_IGNORED = {"--no-cache-dir", "-q", "--quiet", "--no-input"}          # change nothing that is installed
OPTIONS_IGNORED = {"--index-url", "-i", "--extra-index-url"}               # where from, not what


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a shell script (continuations joined; split at &&, ||, ;, | and newlines)."""
    script = script.replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part)
            if words:
                commands.append(words)
    return commands


def pip_installs(commands) -> list[list[str]]:
    """The arguments of every `pip install` / `python -m pip install`, without the flags that change nothing."""
    out = []
    for words in commands:
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install" and (i == 0 or words[i - 1] == "-m"):
                args, rest = [], iter(words[i + 2:])
                for w in rest:
                    if w in FLAGS_IGNORED:
                        continue
                    if w in OPTIONS_IGNORED:
                        next(rest, None)
                        continue
                    if any(w.startswith(o + "=") for o in OPTIONS_IGNORED):
                        continue
                    args.append(w)
                out.append(args)
                break
    return out


def readme_first_code_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^```[^\n]*\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    assert m, "README.md has no code block"
    return m.group(1)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuations joined, comments dropped."""
    lines = [ln for ln in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
             if not ln.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_pip_lines_are_the_readmes():
    readme = pip_installs(shell_commands(readme_first_code_block()))
    docker = pip_installs(cmd for op, args in dockerfile_instructions() if op == "RUN"
                          for cmd in shell_commands(args))
    assert readme, "the README's first code block installs nothing with pip"
    assert any(a[:1] == ["torch==2.13.0"] for a in readme) and any("-e" in a for a in readme)
    assert docker == readme, f"Dockerfile installs {docker}, the README {readme}"


def test_base_and_torch_index_are_build_arguments_cpu_by_default():
    ins = dockerfile_instructions()
    args = dict(a.split("=", 1) for op, a in ins if op == "ARG" and "=" in a)
    assert args.get("BASE") == "python:3.11-slim" and args.get("TORCH_INDEX") == CPU_INDEX
    assert [a for op, a in ins if op == "FROM"] == ["${BASE}"]
    ops = [op for op, _ in ins]
    assert ops.index("ARG") < ops.index("FROM"), "ARG BASE must come before FROM to be usable there"
    torch_runs = [a for op, a in ins if op == "RUN" and "torch==" in a]
    assert len(torch_runs) == 1 and "--index-url ${TORCH_INDEX}" in torch_runs[0]


def test_entrypoint_is_the_cli():
    ins = dockerfile_instructions()
    assert [a for op, a in ins if op == "ENTRYPOINT"] == ['["pixelfolder"]']
    scripts = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^pixelfolder = "pixelfolder\.cli\.main:main"', scripts, flags=re.MULTILINE)


def ignored(path: str, patterns) -> bool:
    """Docker's rule, simplified: a path is ignored when it or a parent matches a pattern (** = any depth)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        for c in candidates:
            if fnmatch.fnmatchcase(c, pattern) or (pattern.startswith("**/") and
                                                  fnmatch.fnmatchcase(c.rsplit("/", 1)[-1], pattern[3:])):
                return True
    return False


def test_dockerignore_keeps_out_environments_and_runs_but_not_the_source():
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    assert not any(p.startswith("!") for p in patterns)
    for path in (".venv/bin/python", "runs/demo/log.txt", ".git/HEAD", "src/pixelfolder/__pycache__/x.pyc",
                 ".pytest_cache/v", "src/pixelfolder.egg-info/PKG-INFO"):
        assert ignored(path, patterns), f"{path} would go into the build context"
    for path in ("pyproject.toml", "README.md", "src/pixelfolder/__init__.py", "src/pixelfolder/cli/main.py",
                 "src/pixelfolder/explore/static/index.html", "LICENSE"):
        assert not ignored(path, patterns), f"{path} is needed by `pip install -e .` but ignored"
