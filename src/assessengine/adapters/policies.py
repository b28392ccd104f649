"""Credential policy files: find, load, validate, and report problems as FILE:LINE:COL.

A policy is found by id, as ``<id>.yaml``, in the directories given explicitly, then among the
policies bundled with the package (``assessengine/_data/credentials``), then (editable
installs) in the repository's own ``credentials/``. The rubrics a policy names are the shipped
ones (`adapters.library.find_rubric`), unless the caller passes others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from ..core.badge_image import generated_badge_svg
from ..core.policy import Policy, PolicyError, check_policy
from ..core.problems import Problem, did_you_mean
from ..core.rubric import Rubric
from ..errors import AssessEngineError, LocatedProblem, Location
from .badge_png import generated_badge_png
from .baking import MAX_IMAGE_BYTES, BadgeImage, BakingError, ImageKind, check_badge_image
from .library import find_rubric, load_rubric, locate_all, rubric_dirs
from .yaml_source import load_yaml

SUFFIX = ".yaml"

RubricLookup = Callable[[str], Rubric | None]


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """The outcome of checking one policy file: valid exactly when `problems` is empty."""

    path: Path
    policy: Policy | None
    problems: tuple[LocatedProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.policy is not None


# ================================================================================== rubrics


@cache
def shipped_rubric(rubric_id: str) -> Rubric | None:
    """The shipped rubric with this id (loaded once), or None when there is none or it is
    invalid."""
    try:
        return load_rubric(find_rubric(rubric_id))[0]
    except AssessEngineError:
        return None


def shipped_rubrics() -> dict[str, Rubric | None]:
    """Every shipped rubric id -> its rubric (None when invalid)."""
    ids = {
        entry.name.removesuffix(SUFFIX)
        for place in rubric_dirs()
        for entry in place.iterdir()
        if entry.name.endswith(SUFFIX)
    }
    return {rubric_id: shipped_rubric(rubric_id) for rubric_id in sorted(ids)}


# ================================================================================= policies


def policy_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """Where policies are searched, in order: `extra`, the bundled copy, the repo's."""
    bundled = Path(str(resources.files("assessengine") / "_data" / "credentials"))
    candidates = [*map(Path, extra), bundled, *_repo_credentials()]
    seen: set[Path] = set()
    result: list[Path] = []
    for place in candidates:
        key = place.resolve()
        if key not in seen and place.is_dir():
            seen.add(key)
            result.append(place)
    return result


def _repo_credentials() -> list[Path]:
    package = Path(__file__).resolve().parents[1]
    root = package.parent.parent  # <repo>/src/assessengine
    is_repo = package.parent.name == "src" and (root / "pyproject.toml").is_file()
    return [root / "credentials"] if is_repo else []


def list_policies(extra: Sequence[Path] = ()) -> list[str]:
    """The ids of every policy file found (sorted, without duplicates)."""
    return sorted(
        {
            entry.name.removesuffix(SUFFIX)
            for place in policy_dirs(extra)
            for entry in place.iterdir()
            if entry.name.endswith(SUFFIX) and entry.is_file()
        }
    )


def find_policy(policy_id: str, *, search: Sequence[Path] = ()) -> Path:
    """The file of policy `policy_id`; PolicyError naming the places searched (and the
    closest known id)."""
    for place in policy_dirs(search):
        candidate = place / f"{policy_id}{SUFFIX}"
        if candidate.is_file():
            return candidate
    known = list_policies(search)
    hint = did_you_mean(policy_id, known) or f"; known policies: {', '.join(known) or 'none'}"
    raise PolicyError(f"credential policy '{policy_id}' not found{hint}")


def check_policy_file(
    path: Path | str, *, rubrics: Mapping[str, Rubric | None] | None = None
) -> PolicyCheck:
    """Check one policy file (structure, then meaning against `rubrics`, by default the
    shipped ones); never raises for a bad file. Problems are sorted by position."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "the file is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc
        return PolicyCheck(path, None, (_at(path, 1, 1, f"cannot read: {reason}"),))
    doc = load_yaml(text)
    if doc.data is None and doc.problems:
        return PolicyCheck(path, None, tuple(locate_all(path, doc, [])))
    policy, problems = check_policy(doc.data, shipped_rubrics() if rubrics is None else rubrics)
    if policy is not None and policy.achievement.image is not None:
        problems.extend(_image_problems(path.parent / policy.achievement.image))
    if policy is not None and policy.policy != path.stem:
        problems.append(
            Problem(("policy",), f"policy id '{policy.policy}' differs from the file name"
                    f" '{path.name}': name the file {policy.policy}{SUFFIX}")
        )  # fmt: skip
    located = locate_all(path, doc, problems)
    located.sort(key=lambda p: (p.location.line, p.location.column))
    return PolicyCheck(path, policy if not located else None, tuple(located))


def load_policy(
    id_or_path: str | Path,
    *,
    search: Sequence[Path] = (),
    rubrics: Mapping[str, Rubric | None] | None = None,
) -> Policy:
    """A valid policy, by id (searched as above) or by file path; PolicyError listing every
    problem (FILE:LINE:COL: message) otherwise."""
    text = str(id_or_path)
    if isinstance(id_or_path, Path) or text.endswith((SUFFIX, ".yml")) or os.sep in text:
        path = Path(id_or_path)
        if not path.is_file():
            raise PolicyError(f"policy file not found: {path}")
    else:
        path = find_policy(text, search=search)
    result = check_policy_file(path, rubrics=rubrics)
    if result.policy is None:
        raise PolicyError(result.problems)
    return result.policy


# ================================================================================== images


def badge_image(
    policy: Policy, kind: ImageKind | None = None, *, search: Sequence[Path] = ()
) -> BadgeImage:
    """The badge image of `policy`, as a PNG or SVG (`kind`; None: as it comes).

    The file its achievement names (``image:``, beside the policy file, checked again now: at
    most `baking.MAX_IMAGE_BYTES`, a PNG or SVG that decodes) comes in its own kind only;
    without one, the badge is generated from the achievement's name and competency codes, as
    an SVG (`core.badge_image`) or a PNG (`badge_png`). PolicyError when the named file is
    missing or not a usable image; BakingError when it is not of the `kind` asked for."""
    name = policy.achievement.image
    if name is None:
        codes = [c.code for c in policy.achievement.competencies]
        if kind == "png":
            return BadgeImage("png", generated_badge_png(policy.achievement.name, codes))
        return BadgeImage("svg", generated_badge_svg(policy.achievement.name, codes))
    path = find_policy(policy.policy, search=search).parent / name
    problems = _image_problems(path)
    if problems:
        raise PolicyError(f"{path}: {problems[0].message}")
    image = check_badge_image(path.read_bytes())
    if kind is not None and image.kind != kind:
        raise BakingError(f"the badge of {policy.policy!r} is a {image.kind.upper()} "
                          f"({name}): there is no {kind.upper()} of it")  # fmt: skip
    return image


def _image_problems(path: Path) -> list[Problem]:
    """What is wrong with the badge image at `path` (nothing when it is usable)."""
    where = ("achievement", "image")
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:  # refused before reading it
            return [Problem(where, f"{path.name} is {size} bytes: a badge image is at most "
                            f"{MAX_IMAGE_BYTES}")]  # fmt: skip
        check_badge_image(path.read_bytes())
    except FileNotFoundError:
        return [Problem(where, f"image file not found: {path.name} (put it beside the policy "
                        "file)")]  # fmt: skip
    except OSError as error:
        return [Problem(where, f"cannot read the image {path.name}: {error.strerror}")]
    except BakingError as error:
        return [Problem(where, f"{path.name}: {error}")]
    return []


# ================================================================================ location


def _at(file: Path | str, line: int, column: int, message: str) -> LocatedProblem:
    return LocatedProblem(Location(str(file), line, column), message)
