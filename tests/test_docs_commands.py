"""Every command line the documentation shows a user names a command that a user's fresh
process finds, and only options that command defines.

What is read (`shown_commands`): README.md and every page under docs/ (``docs/**/*.md``),
and the command line's own help texts: the docstrings of the functions `cli/*.py` makes
commands or groups, and the modules' ``help=`` / ``epilog=`` strings.

Which text is a command line, the rule (`commands_in`):

- Markdown: a line of a fenced code block (any language) or an inline code span (which may
  run over the lines of one paragraph). Prose outside backticks is never read. A help text:
  every line (click's ``\\b`` example blocks), and its inline code spans too; two or more
  spaces end the command on a help text's line (the description column those blocks align).
- Shell syntax: a trailing ``\\`` continues the line; ``#`` at the start of a word starts a
  comment (not checked); ``&&``, ``||``, ``;``, ``&``, and ``|`` with a space beside it
  separate commands; a ``<`` / ``>`` redirection ends one; a prompt (``$``), variable
  assignments (``DB=x``) and ``do`` / ``then`` / ``time`` before the command are skipped.
- A command line is a command whose first word is ``assessengine`` and whose second word is
  command-like (lower-case letters, digits, ``-``) or an option. Anything else there is output
  or prose, not a command line, and is not checked: ``assessengine serving: ...`` (the server's
  log line), ``assessengine ...`` (any command), ``assessengine`` alone.
- ``a|b|c`` inside one word means one of them: each is checked. Square brackets around words
  (``[--by NAME]``) mark them optional and are dropped.
- Placeholders: ``FILE``, ``SESSION`` (no lower-case letter), ``<db>``, ``$DB``, anything with
  ``...``. As an argument or an option's value they are what they are; where a subcommand is
  expected one stands for any, and the rest of that line is not checked.

The check, in one subprocess (this file run as a script, `_resolve_stdin`), which receives
every command line as JSON on stdin and answers, per line, what is wrong with it (nothing:
an empty list):

- The command path is resolved word by word as click resolves it, through each group's
  ``get_command`` (for `cli._app.LazyGroup`: its registry ``lazy``, the module imported then),
  from ``assessengine.cli.main`` in a process that imported nothing else of the command line.
  The resolution stops at the first word of a group that is no option: a subcommand, or
  click's "No such command" (a problem); a command's other words are its arguments.
- Each word that is an option (``--name``, ``--name=value``, ``-x``, ``-xVALUE``, ``-xy``
  flags) must be one of those defined by the command being parsed at that point (a group's
  before its subcommand, the command's own after it), ``--no-x`` secondary names and the help
  option (``-h``, ``--help``, from the root's context settings) included. An option's values
  are skipped, but for a choice option's (``--role``, ``--format``): one of its choices, or
  a placeholder.
- Resolving every line in one process could find a command only because looking up another
  line imported the module that attaches it (how ``keys issuer`` went unnoticed: only
  ``credential``'s module attaches it to ``keys``). So every lookup of a word runs in a child
  forked from a process that has looked up just the words before it: the lines form a tree of
  command paths, with one child per branch, and each line is resolved with exactly the imports
  a user's fresh process for it has (`test_a_command_another_lookup_attaches_is_not_found`
  shows it on a small command line). Each top-level command's module is imported once, in its
  own child: 6 to 8 s in all on a busy 2-core machine (0.8 s to start and import
  ``assessengine.cli``, 4 s for the top-level commands' imports, a few ms a fork).
- Not checked: arguments (their number, their values), the values of options other than
  choices, and what comments say.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "src" / "assessengine" / "cli"
PROGRAM = "assessengine"


@dataclass(frozen=True)
class Shown:
    """One command line as shown: where (``FILE:LINE``), its text, and its words after the
    program's name."""

    where: str
    text: str
    words: tuple[str, ...]


# --- which text is a command line -------------------------------------------------------

_PLACEHOLDER = re.compile(r"<[^<>\s]+>")
_SKIPPED_FIRST = {"$", "do", "then", "else", "time", "exec", "nohup", "sudo"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
_COMMAND_LIKE = re.compile(r"-.+|[a-z][a-z0-9-]*")
_ALTERNATIVES = re.compile(r"[^|\s]+(\|[^|\s]+)+")
_BACKTICKS = re.compile(r"`+")


def _segments(text: str) -> list[str]:
    """`text` split into the commands of a shell line: comments dropped, separated at ``&&``,
    ``||``, ``;``, ``&``, a ``|`` with a space beside it; a redirection ends a command (its
    target and anything after it up to the next separator dropped). Quotes are kept."""
    segments: list[str] = []
    current: list[str] = []
    quote = ""
    dropping = False  # after a redirection, until the next separator
    i = 0

    def close() -> None:
        nonlocal current, dropping
        segments.append("".join(current))
        current, dropping = [], False

    while i < len(text):
        char = text[i]
        if quote:
            if not dropping:
                current.append(char)
            quote = "" if char == quote else quote
            i += 1
            continue
        word_start = not current or current[-1].isspace()
        if char in "'\"":
            quote = char
        elif char == "#" and word_start:
            break
        elif text.startswith(("&&", "||"), i):
            close()
            i += 2
            continue
        elif char in ";&" or (char == "|" and (word_start or text[i + 1 : i + 2] in ("", " "))):
            close()
            i += 1
            continue
        elif char == "<" and (placeholder := _PLACEHOLDER.match(text, i)):
            if not dropping:
                current.append(placeholder.group())
            i = placeholder.end()
            continue
        elif char in "<>":
            if not dropping:
                digits = re.search(r"(^|\s)\d+$", "".join(current))  # 2>, 2>&1
                if digits:
                    del current[digits.start() + len(digits.group(1)) :]
            dropping = True
            i += 2 if text.startswith((">&", ">>"), i) else 1
            continue
        if not dropping:
            current.append(char)
        i += 1
    segments.append("".join(current))
    return segments


def _unbracketed(word: str) -> str:
    """`word` without the square brackets that mark optional parts (``[--by``, ``NAME]``,
    ``[--json]``); a value's own brackets are left."""
    if word.startswith("[") and (word.endswith("]") or "]" not in word):
        word = word[1:]
    if word.endswith("]") and "[" not in word:
        word = word[:-1]
    return word


def _variants(words: list[str]) -> Iterator[list[str]]:
    """`words` once per choice of each ``a|b|c`` word (the docs' "one of")."""
    for index, word in enumerate(words):
        if _ALTERNATIVES.fullmatch(word):
            for choice in word.split("|"):
                yield from _variants([*words[:index], choice, *words[index + 1 :]])
            return
    yield words


def commands_in(line: str) -> list[tuple[str, tuple[str, ...]]]:
    """The command lines in one logical shell line (continuations joined): each as its text
    and its words after ``assessengine`` (see the module's docstring for the rule)."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for segment in _segments(line):
        try:
            words = shlex.split(segment)
        except ValueError:  # an unbalanced quote (a span cut inside a value)
            words = segment.replace('"', " ").replace("'", " ").split()
        while words and (words[0] in _SKIPPED_FIRST or _ASSIGNMENT.fullmatch(words[0])):
            words = words[1:]
        if len(words) < 2 or words[0] != PROGRAM:
            continue
        words = [w for w in map(_unbracketed, words[1:]) if w]
        text = " ".join(segment.split())
        found.extend((text, tuple(variant)) for variant in _variants(words)
                     if variant and _COMMAND_LIKE.fullmatch(variant[0]))  # fmt: skip
    return found


def _code_spans(lines: list[str], first: int) -> Iterator[tuple[int, str]]:
    """The inline code spans of one block of text (its lines, the first numbered `first`):
    each as the number of the line it opens on and its text, line breaks as spaces."""
    text = "\n".join(lines)
    i = 0
    while (opening := _BACKTICKS.search(text, i)) is not None:
        fence = opening.group()
        closing = re.compile(rf"(?<!`){fence}(?!`)").search(text, opening.end())
        if closing is None:  # no closing run of the same length: literal backticks
            i = opening.end()
            continue
        content = text[opening.end() : closing.start()].replace("\n", " ")
        yield first + text.count("\n", 0, opening.start()), content
        i = closing.end()


def _logical_lines(lines: list[str], first: int) -> Iterator[tuple[int, str]]:
    """`lines` with each trailing-backslash continuation joined to the next line."""
    start, parts = first, list[str]()
    for number, line in enumerate(lines, first):
        if not parts:
            start = number
        stripped = line.strip()
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


_FENCE = re.compile(r"\s*(`{3,}|~{3,})")


def markdown_commands(path: Path) -> Iterator[Shown]:
    """The command lines a Markdown page shows: in its fenced code blocks and inline code."""
    name = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    block: list[str] = []  # the lines of a fenced block, or of a paragraph
    start = 1
    fence = ""

    def paragraph() -> Iterator[Shown]:
        for number, span in _code_spans(block, start):
            for text, words in commands_in(span):
                yield Shown(f"{name}:{number}", text, words)

    for number, line in enumerate(lines, 1):
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(
                fence
            ) and not line[opening.end() :].strip():
                for first, logical in _logical_lines(block, start):
                    for text, words in commands_in(logical):
                        yield Shown(f"{name}:{first}", text, words)
                block, fence = [], ""
            else:
                block.append(line)
            continue
        if opening or not line.strip():
            yield from paragraph()
            block, start = [], number + 1
            if opening:
                fence = opening.group(1)
            continue
        if not block:
            start = number
        block.append(line)
    yield from paragraph()


def _makes_command(decorator: ast.expr) -> bool:
    function = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(function, ast.Attribute) and function.attr in {"command", "group"}) or (
        isinstance(function, ast.Name) and function.id in {"command", "group"}
    )


def _help_texts(path: Path) -> Iterator[tuple[int, str]]:
    """A command-line module's help texts: each as the line its string starts on, and the
    string."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        value: ast.expr | None = None
        if isinstance(node, ast.FunctionDef) and any(map(_makes_command, node.decorator_list)):
            first = node.body[0]
            value = first.value if isinstance(first, ast.Expr) else None
        elif isinstance(node, ast.keyword) and node.arg in {"help", "epilog", "short_help"}:
            value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            yield value.lineno, value.value


def help_text_commands(path: Path) -> Iterator[Shown]:
    """The command lines in a command-line module's help texts: lines and inline code."""
    name = path.relative_to(ROOT).as_posix()
    for first, text in _help_texts(path):
        lines = text.splitlines()
        # two or more spaces after a command: its description, in click's aligned examples
        cut = [re.split(r"(?<=\S)\s{2,}", line.strip(), maxsplit=1)[0] for line in lines]
        for number, logical in _logical_lines(cut, first):
            for text_, words in commands_in(logical):
                yield Shown(f"{name}:{number}", text_, words)
        for number, span in _code_spans(lines, first):
            for text_, words in commands_in(span):
                yield Shown(f"{name}:{number}", text_, words)


def shown_commands() -> list[Shown]:
    """Every command line the documentation and the help texts show."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    shown = [command for page in pages for command in markdown_commands(page)]
    for module in sorted(CLI.glob("*.py")):
        shown.extend(help_text_commands(module))
    return shown


# --- the check, in a fresh process -------------------------------------------------------

Line = tuple[int, list[str], list[str]]
"""A line being resolved: its key, its words from the command reached on, its problems."""
Answers = dict[str, list[str]]
"""Each line's key (as a string: JSON) -> its problems."""


def _is_option(word: str) -> bool:
    return len(word) > 1 and word[0] == "-" and word != "--" and not word[1].isdigit()


def _is_placeholder(word: str) -> bool:
    return (
        "..." in word
        or "…" in word
        or word.startswith("$")
        or bool(_PLACEHOLDER.fullmatch(word))
        or not any(char.islower() for char in word)
    )


def _options(command: click.Command, ctx: click.Context) -> dict[str, click.Option]:
    """The command's options by name (secondary ``--no-x`` names and the help option
    included)."""
    return {name: param for param in command.get_params(ctx) if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}  # fmt: skip


def _takes(option: click.Option) -> int:
    """How many values `option` takes."""
    return 0 if option.is_flag or option.count else option.nargs


def _check_value(option: click.Option, value: str, problems: list[str], path: str) -> None:
    """A value given to a choice option (not a placeholder) must be one of its choices."""
    if isinstance(option.type, click.Choice) and not _is_placeholder(value):
        choices = [str(choice) for choice in option.type.choices]
        if value not in choices and (
            option.type.case_sensitive or value.lower() not in map(str.lower, choices)
        ):
            problems.append(f"{value!r} is none of the choices of option {option.opts[-1]} of "
                            f"`{path}`: {', '.join(choices)}")  # fmt: skip


def _option(words: list[str], i: int, options: dict[str, click.Option], problems: list[str],
            path: str) -> int:  # fmt: skip
    """Check the option `words[i]` against `options` (and a choice's value); the index of the
    word after it and its values."""
    word = words[i]
    name, equals, value = word.partition("=")
    if name in options:
        option, takes = options[name], _takes(options[name])
        if equals and takes == 0:
            problems.append(f"option {name} of `{path}` takes no value")
        if not equals:
            value = words[i + 1] if takes == 1 and i + 1 < len(words) else ""
        if takes == 1 and value:
            _check_value(option, value, problems, path)
        return i + 1 + (0 if equals else takes)
    if not word.startswith("--") and word[:2] in options:  # -xVALUE, or -xy flags
        for position in range(1, len(word)):
            flag = f"-{word[position]}"
            if flag not in options:
                problems.append(f"`{path}` has no option {flag} (in {word})")
                break
            if _takes(options[flag]):  # the rest of the word is its value
                _check_value(options[flag], word[position + 1 :], problems, path)
                break
        return i + 1
    problems.append(f"`{path}` has no option {name}")
    return i + 1


def _forked(task: Callable[[], Answers]) -> Answers | str:
    """`task()` run in a child process forked from this one (so what it imports stays
    there): its answers, or why there are none."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            answer: Answers | str = task()
        except BaseException as exc:
            answer = f"{type(exc).__name__}: {exc}"
        with os.fdopen(write_end, "w", encoding="utf-8") as out:
            json.dump(answer, out)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return f"the lookup's process ended with status {status} and no answer"
    answer = json.loads(data)
    return answer if isinstance(answer, str) else dict(answer)


def _not_found(group: click.Group, ctx: click.Context, word: str, package: str) -> str:
    """Why `word` is no subcommand of `group` (which has been looked up as a fresh process
    does): also, when some module of the command line does attach it, which."""
    why = f"no command {word!r} in `{ctx.command_path}` (click: No such command)"
    root_package = importlib.import_module(package)
    for module in pkgutil.iter_modules(root_package.__path__):
        importlib.import_module(f"{package}.{module.name}")
    attached = group.get_command(ctx, word)
    if attached is not None:
        where = getattr(attached.callback, "__module__", "another module")
        how = (
            "its registry (`lazy`) does not name that module"
            if hasattr(group, "lazy")
            else "it is a plain click group, which finds only what imported modules attached"
        )
        why += (
            f": a fresh process does not find it; it is defined in {where}, which looking it"
            f" up does not import ({how})"
        )
    return why


def _at(command: click.Command, ctx: click.Context, key: int, words: list[str],
        problems: list[str], options: dict[str, click.Option],
        waiting: dict[str, list[Line]]) -> bool:  # fmt: skip
    """Check one line's options at `command` up to its subcommand, if any; whether it goes on
    to one (then it is in `waiting`)."""
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return False  # the rest are arguments
        if _is_option(word):
            i = _option(words, i, options, problems, ctx.command_path)
            continue
        if isinstance(command, click.Group):
            if _is_placeholder(word):
                return False  # any subcommand: the rest is not checked
            waiting.setdefault(word, []).append((key, words[i + 1 :], problems))
            return True
        i += 1  # an argument
    return False


def _walk(command: click.Command, ctx: click.Context, lines: list[Line],
          package: str) -> Answers:  # fmt: skip
    """Resolve `lines` from `command` (reached in this process as in a fresh one), checking
    their options: each line's problems."""
    answers: Answers = {}
    options = _options(command, ctx)
    waiting: dict[str, list[Line]] = {}  # subcommand -> the lines going through it
    for key, words, problems in lines:
        if not _at(command, ctx, key, words, problems, options, waiting):
            answers[str(key)] = problems
    if not waiting:
        return answers
    assert isinstance(command, click.Group)
    for word, through in waiting.items():

        def look_up(group: click.Group = command, word: str = word,
                    through: list[Line] = through) -> Answers:  # fmt: skip
            sub = group.get_command(ctx, word)
            if sub is None:
                why = _not_found(group, ctx, word, package)
                return {str(key): [*problems, why] for key, _, problems in through}
            sub_ctx = click.Context(sub, parent=ctx, info_name=word, **sub.context_settings)
            return _walk(sub, sub_ctx, through, package)

        found = _forked(look_up)
        if isinstance(found, str):
            found = {
                str(key): [*problems, f"looking up `{ctx.command_path} {word}` failed: {found}"]
                for key, _, problems in through
            }
        answers.update(found)
    return answers


def _resolve_stdin(root: str) -> None:
    """The subprocess: resolve the command lines on stdin (JSON: a list of word lists) from
    `root` (``module:attribute``), print each one's problems (JSON: a list of lists)."""
    words: list[list[str]] = json.load(sys.stdin)
    answer_to = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever else writes to stdout (an import, a child) goes to stderr
    module_name, _, attribute = root.partition(":")
    module = importlib.import_module(module_name)  # what the console script imports
    command = getattr(module, attribute)
    package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
    ctx = click.Context(command, info_name=PROGRAM, **command.context_settings)
    answers = _walk(command, ctx, [(key, list(w), []) for key, w in enumerate(words)], package)
    with answer_to:
        json.dump([answers[str(key)] for key in range(len(words))], answer_to)


def resolve(lines: list[tuple[str, ...]], root: str = "assessengine.cli:main",
            pythonpath: tuple[Path, ...] = ()) -> list[list[str]]:  # fmt: skip
    """Each line's problems, found by a fresh Python process (this file as a script)."""
    spec = importlib.util.find_spec("assessengine")
    assert spec is not None
    assert spec.origin is not None
    paths = [*map(str, pythonpath), str(Path(spec.origin).parents[1])]  # this assessengine
    paths.append(os.environ.get("PYTHONPATH", ""))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run([sys.executable, "-P", __file__, root], input=json.dumps(lines),
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answers: list[list[str]] = json.loads(proc.stdout)
    return answers


# --- the tests -----------------------------------------------------------------------------

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="each lookup runs in a fork")


@needs_fork
def test_every_command_line_shown_exists_with_its_options() -> None:
    """Every command line of README.md, docs/ and the help texts resolves in a fresh process
    to a command that defines each of its options."""
    shown = shown_commands()
    answers = resolve([command.words for command in shown])
    wrong = [
        f"{command.where}: `{command.text}`: {'; '.join(problems)}"
        for command, problems in zip(shown, answers, strict=True)
        if problems
    ]
    assert not wrong, f"{len(wrong)} of {len(shown)} command lines shown:\n" + "\n".join(wrong)


def test_the_command_lines_are_found() -> None:
    """The extraction finds the command lines of each kind of place (not a vacuous pass)."""
    shown = shown_commands()
    files = {command.where.partition(":")[0] for command in shown}
    assert len(shown) > 150
    assert {"README.md", "docs/credentials.md", "docs/operations.md", "docs/performance.md",
            "docs/rubrics.md", "src/assessengine/cli/serve_cmd.py"} <= files  # fmt: skip
    found = {(command.where.partition(":")[0], command.words) for command in shown}
    assert ("README.md", ("demo",)) in found  # after `&&` in a fenced block
    assert ("docs/performance.md", ("--version",)) in found  # inline, in a table
    assert ("docs/api.md", ("rubric", "check")) in found  # inline, over two lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("$ assessengine rubric check rubrics/*.yaml   # validate", [("rubric", "check",
                                                                        "rubrics/*.yaml")]),
        ("pip install . && assessengine demo --keep", [("demo", "--keep")]),
        ("DB=x assessengine audit S --db \"$DB\" | head -3 > out.txt", [("audit", "S", "--db",
                                                                          "$DB")]),
        ("assessengine serve --db e.db 2>&1 &", [("serve", "--db", "e.db")]),
        ("for k in a b; do assessengine schema $k -o <out>; done",
         [("schema", "$k", "-o", "<out>")]),
        ("assessengine credential revoke --id urn:uuid:... [--by NAME]",
         [("credential", "revoke", "--id", "urn:uuid:...", "--by", "NAME")]),
        ("assessengine token create|list --db URL",
         [("token", "create", "--db", "URL"), ("token", "list", "--db", "URL")]),
        ("assessengine serving: zmq tcp://127.0.0.1:5555", []),
        ("assessengine ...", []),
        ("the assessengine package", []),
    ],
)  # fmt: skip
def test_which_text_is_a_command_line(line: str, expected: list[tuple[str, ...]]) -> None:
    assert [words for _, words in commands_in(line)] == expected


_FAKE_CLI = {
    "__init__.py": '''
import importlib
import click

class Lazy(click.Group):
    def __init__(self, *args, lazy=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def get_command(self, ctx, name):
        if name not in self.commands and name in self.lazy:
            importlib.import_module(f"{__name__}.{self.lazy[name]}")
        return self.commands.get(name)

@click.group(cls=Lazy, lazy={"a": "a_cmd", "b": "b_cmd"},
             context_settings={"help_option_names": ["-h", "--help"]})
def main():
    pass
''',
    "b_cmd.py": '''
from . import main

@main.group()
def b():
    pass

@b.command("shown")
def shown():
    pass
''',
    "a_cmd.py": '''
import click
from . import main
from .b_cmd import b

@main.command("a")
@click.option("--flag/--no-flag")
@click.option("-n", "--number", type=int)
@click.option("-q", is_flag=True)
@click.option("--kind", type=click.Choice(["x", "y"]))
def a(flag, number, q, kind):
    pass

@b.command("hidden")  # attached to b only when a_cmd is imported
def hidden():
    pass
''',
}


@needs_fork
def test_a_command_another_lookup_attaches_is_not_found(tmp_path: Path) -> None:
    """A command found only because looking up another line's command imported the module
    that attaches it is reported, whichever line comes first; options are checked."""
    package = tmp_path / "fakecli"
    package.mkdir()
    for name, source in _FAKE_CLI.items():
        (package / name).write_text(source, encoding="utf-8")
    lines = [("a", "--no-flag", "-n", "3", "-qn4"), ("b", "hidden"), ("b", "shown", "-h"),
             ("a", "--nope", "x", "--flag=1"), ("c",), ("b", "FILE"), ("--version",),
             ("a", "--kind=y", "--kind", "KIND"), ("a", "--kind", "z")]  # fmt: skip
    answers = resolve(lines, "fakecli:main", (tmp_path,))
    assert answers[0] == []
    assert answers[1][0].startswith("no command 'hidden' in `assessengine b`")
    assert "defined in fakecli.a_cmd" in answers[1][0]
    assert answers[2] == []
    assert answers[3] == ["`assessengine a` has no option --nope",
                          "option --flag of `assessengine a` takes no value"]  # fmt: skip
    assert answers[4] == ["no command 'c' in `assessengine` (click: No such command)"]
    assert answers[5] == []
    assert answers[6] == ["`assessengine` has no option --version"]
    assert answers[7] == []
    assert answers[8] == ["'z' is none of the choices of option --kind of `assessengine a`: x, y"]


if __name__ == "__main__":
    _resolve_stdin(sys.argv[1])
