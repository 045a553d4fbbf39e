"""Deep learning packages (.dlpk): writing them atomically and reading them safely.

A package is a zip with, at its root, the model definition ``<stem>.emd`` (JSON), the weights
``<stem>.pth`` (a plain state dict, tensors only, saved with ``torch.save``) and report files:
``model_metrics.html``, ``loss_graph.png`` and ``show_results.png`` (when a preview is given).

A .dlpk is untrusted input. :func:`read_dlpk` never extracts anything: it checks every member's
name (no absolute paths, ``..``, drive letters or symlinks), the sizes (no member over
:data:`MAX_MEMBER_BYTES`, no compression bomb), reads the .emd and the weights from the zip in
memory, and loads the weights with ``torch.load(weights_only=True)``, so a pickle that needs
code is refused. A package whose ``InferenceFunction`` names Python code is refused unless the
caller trusts it (``trust_code=True``); even then nothing is executed here.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..protocol import InputError

#: fields every .emd must have
REQUIRED_FIELDS = ("Framework", "ModelConfiguration", "ModelFile", "ModelType", "Classes")
#: the frameworks this plugin loads
SUPPORTED_FRAMEWORKS = ("PyTorch",)
METRICS_HTML = "model_metrics.html"
LOSS_GRAPH = "loss_graph.png"
SHOW_RESULTS = "show_results.png"
#: size limits for what is read from a package (uncompressed)
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_EMD_BYTES = 16 * 1024**2
MAX_MEMBERS = 10_000
#: a member larger than MAX_RATIO_FROM bytes may expand at most MAX_RATIO times (zip bombs)
MAX_RATIO = 100
MAX_RATIO_FROM = 16 * 1024**2
#: ArcGIS names its built-in inference functions like this (no code from the package)
_ARCGIS_FUNCTION = re.compile(r"^\[Functions\]", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")


class PackageError(InputError):
    """A package that cannot be written or read (the message names the file and the fix)."""


class PackageExistsError(PackageError):
    """The output package exists and OVERWRITE_MODEL is not set."""


class UnsafePackageError(PackageError):
    """A package refused for safety: a path escape, a bomb, code, a pickle needing code."""


@dataclass
class LoadedPackage:
    emd: dict
    state_dict: dict
    members: list[str]
    path: str = ""
    #: the package's own inference code (a member name), only for a trusted package; it is
    #: reported here, never executed
    inference_function: str | None = None
    code: dict[str, bytes] = field(default_factory=dict, repr=False)


# --- checking ------------------------------------------------------------------------------


def check_emd(emd, where: str) -> dict:
    """The model definition if it has what a package needs, else PackageError saying what."""
    if not isinstance(emd, dict):
        raise PackageError(f"{_cap(where)} is not a JSON object.")
    missing = [k for k in REQUIRED_FIELDS if emd.get(k) in (None, "", [], {})]
    if "Classes" in missing and isinstance(emd.get("Classes"), list):
        missing.remove("Classes")  # present but empty: said below
    if missing:
        raise PackageError(
            f"{_cap(where)} lacks {', '.join(missing)}; a model definition needs "
            f"{', '.join(REQUIRED_FIELDS)}."
        )
    framework = emd["Framework"]
    if str(framework).strip().lower() not in {f.lower() for f in SUPPORTED_FRAMEWORKS}:
        raise PackageError(
            f"{_cap(where)} is for the {framework} framework; this plugin loads "
            f'{", ".join(SUPPORTED_FRAMEWORKS)} models only (Framework "PyTorch").'
        )
    if not isinstance(emd["ModelFile"], str):
        raise PackageError(f"{_cap(where)}: ModelFile must be a file name.")
    if not isinstance(emd["ModelConfiguration"], str | dict):
        raise PackageError(f"{_cap(where)}: ModelConfiguration must be a name or an object.")
    classes = emd["Classes"]
    if not isinstance(classes, list) or not classes:
        raise PackageError(f"{_cap(where)}: Classes must be a non-empty list.")
    for row in classes:
        if not isinstance(row, dict) or "Value" not in row or "Name" not in row:
            raise PackageError(
                f"{_cap(where)}: every entry of Classes needs a Value and a Name, not {row!r}."
            )
    return emd


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to honour, or None."""
    if not name or "\x00" in name:
        return "an empty name or a NUL character"
    norm = name.replace("\\", "/")
    if norm.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(norm):
        return "a drive letter"
    if ".." in PurePosixPath(norm).parts:
        return "a '..' component that leaves the package"
    return None


def _code_file(emd: dict) -> str | None:
    """The Python file InferenceFunction names, unless it is one of ArcGIS's own functions."""
    function = emd.get("InferenceFunction")
    if not function:
        return None
    if not isinstance(function, str):
        raise PackageError("InferenceFunction must be a file name.")
    if _ARCGIS_FUNCTION.match(function.strip()):
        return None  # ArcGIS's built-in functions: no code from the package
    name = function.strip().replace("\\", "/")
    if name.lower().endswith((".py", ".pyc", ".pyd", ".so", ".dll")):
        return name
    return None


# --- reading -------------------------------------------------------------------------------


def read_dlpk(path, *, trust_code: bool = False, weights: bool = True) -> LoadedPackage:
    """Read and check a package without extracting it; PackageError (an InputError) says why
    one is refused. With ``weights=False`` the weights are not loaded (no torch needed): the
    QGIS side checks a package this way before it starts a worker."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"The deep learning package '{path}' does not exist.")
    if not zipfile.is_zipfile(path):
        raise PackageError(
            f"'{path}' is not a deep learning package (.dlpk): it is not a zip file."
            + (" For a bare model definition use the .emd with its weights beside it."
               if path.suffix.lower() != ".emd" else "")
        )  # fmt: skip
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_zip(zf, path, trust_code, weights)
    except zipfile.BadZipFile as exc:
        raise PackageError(f"The package '{path}' is a damaged zip file: {exc}.") from None


def _read_zip(zf: zipfile.ZipFile, path: Path, trust_code: bool, weights: bool) -> LoadedPackage:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UnsafePackageError(f"The package '{path}' has {len(infos)} files; refused.")
    seen, total = set(), 0
    for info in infos:
        name = info.filename
        problem = _unsafe_name(name)
        if problem is None and stat.S_ISLNK(info.external_attr >> 16):
            problem = "a symbolic link"
        if problem is None and info.flag_bits & 0x1:
            problem = "encryption"
        if problem is None and name.replace("\\", "/") in seen:
            problem = "a second member of the same name"
        if problem:
            raise UnsafePackageError(
                f"The package '{path}' is refused: its member '{name}' has {problem}. Nothing "
                "was extracted."
            )
        seen.add(name.replace("\\", "/"))
        size = info.file_size
        if size > MAX_MEMBER_BYTES:
            raise UnsafePackageError(
                f"The package '{path}' is refused: its member '{name}' is {_gb(size)} "
                f"uncompressed (the limit is {_gb(MAX_MEMBER_BYTES)})."
            )
        if size > MAX_RATIO_FROM and size > MAX_RATIO * max(info.compress_size, 1):
            raise UnsafePackageError(
                f"The package '{path}' is refused: its member '{name}' expands "
                f"{size // max(info.compress_size, 1)} times ({_gb(size)}), like a zip bomb."
            )
        total += size
    if total > MAX_TOTAL_BYTES:
        raise UnsafePackageError(
            f"The package '{path}' is refused: {_gb(total)} uncompressed (the limit is "
            f"{_gb(MAX_TOTAL_BYTES)})."
        )
    members = [i.filename for i in infos if not i.is_dir()]
    emds = [m for m in members if m.lower().endswith(".emd")]
    at_root = [m for m in emds if "/" not in m.replace("\\", "/")]
    if len(at_root) != 1:
        found = ", ".join(emds) if emds else "none"
        raise PackageError(
            f"The package '{path}' must hold exactly one model definition (.emd) at its root; "
            f"found {found}."
        )
    emd_name = at_root[0]
    emd = _parse_emd(_read(zf, emd_name, MAX_EMD_BYTES), f"'{emd_name}' in '{path}'")
    model_file = _member_path(emd["ModelFile"], f"'{emd_name}' in '{path}'")
    if model_file not in members:
        raise PackageError(
            f"The package '{path}' lacks its weights '{model_file}' (the ModelFile of "
            f"'{emd_name}'); it holds {', '.join(members)}."
        )
    code_name, code = _check_code(emd, members, path, trust_code)
    if code_name is not None:
        code = {code_name: _read(zf, code_name, MAX_EMD_BYTES)}
    state = _load_weights(_read(zf, model_file), f"'{model_file}' in '{path}'") if weights else {}
    return LoadedPackage(emd=emd, state_dict=state, members=members, path=str(path),
                         inference_function=code_name, code=code)  # fmt: skip


def _check_code(emd: dict, members, path, trust_code: bool) -> tuple[str | None, dict]:
    code_file = _code_file(emd)
    if code_file is None:
        return None, {}
    if not trust_code:
        raise UnsafePackageError(
            f"The package '{path}' is refused: its InferenceFunction names Python code "
            f"('{emd['InferenceFunction']}'), and code from a package runs only when you trust "
            "the package explicitly."
        )
    name = _member_path(code_file, f"the InferenceFunction of '{path}'")
    if name not in members:
        raise PackageError(
            f"The package '{path}' names the inference function '{code_file}', which it does "
            "not hold."
        )
    return name, {}


def _member_path(name: str, where: str) -> str:
    """A file name from the .emd as a member name relative to the package's root."""
    norm = name.strip().replace("\\", "/")
    while norm.startswith(("./", "/")):
        norm = norm[2:] if norm.startswith("./") else norm[1:]
    problem = _unsafe_name(norm) if norm else "an empty name"
    if problem:
        raise UnsafePackageError(f"{_cap(where)} names the file '{name}', with {problem}.")
    return norm


def _read(zf: zipfile.ZipFile, name: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise UnsafePackageError(f"'{name}' is {_gb(info.file_size)}: too large; refused.")
    with zf.open(info) as fh:  # reads at most file_size bytes, and checks the CRC
        return fh.read(limit + 1)


def _parse_emd(data: bytes, where: str) -> dict:
    try:
        emd = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PackageError(f"The model definition {where} is not valid JSON: {exc}.") from None
    return check_emd(emd, f"the model definition {where}")


def _load_weights(data: bytes, where: str) -> dict:
    import torch

    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(str(exc))
        if "unsupported operand" not in detail.lower():  # a global, a call: code
            raise UnsafePackageError(
                f"The weights {where} need code to load (a pickled object, not a state dict); "
                f"this package is refused. ({detail[:300]})"
            ) from None
        raise PackageError(
            f"The weights {where} cannot be read as PyTorch weights: the file is damaged or "
            f"not a PyTorch file ({detail[:200]})."
        ) from None
    except Exception as exc:  # a damaged or foreign file
        raise PackageError(
            f"The weights {where} cannot be read as PyTorch weights: {type(exc).__name__}: "
            f"{str(exc)[:300]}"
        ) from None
    return _state_dict_of(obj, where, torch)


def _unpickler_detail(message: str) -> str:
    """The part of torch's weights_only message that says what was refused."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", message) if p.strip()]
    boilerplate = ("Weights only load failed", "Check the documentation")
    keep = [p for p in paragraphs if not p.startswith(boilerplate)]
    detail = " ".join(keep) or " ".join(message.split())
    return detail.split("WeightsUnpickler error:", 1)[-1].strip()


def _state_dict_of(obj, where: str, torch) -> dict:
    def tensors(candidate) -> bool:
        return (
            isinstance(candidate, Mapping)
            and bool(candidate)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                    for k, v in candidate.items())
        )  # fmt: skip

    if tensors(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if tensors(obj.get(key)):
                return dict(obj[key])
    raise PackageError(
        f"The weights {where} hold a {type(obj).__name__}, not a state dict (parameter names "
        "mapped to tensors)."
    )


def _gb(n: int) -> str:
    return f"{n / 1024**3:.2f} GB" if n >= 1024**3 else f"{n / 1024**2:.1f} MB"


# --- a bare .emd ---------------------------------------------------------------------------


def read_emd(path, *, trust_code: bool = False, weights: bool = True) -> LoadedPackage:
    """A bare model definition with its weights (ModelFile) beside it, with the checks of
    :func:`read_dlpk`; the weights must be inside the .emd's folder."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"The model definition '{path}' does not exist.")
    if path.stat().st_size > MAX_EMD_BYTES:
        raise PackageError(f"'{path}' is too large for a model definition.")
    emd = _parse_emd(path.read_bytes(), f"'{path}'")
    folder = path.parent.resolve()
    model_file = _member_path(emd["ModelFile"], f"'{path}'")
    weights_path = (folder / model_file).resolve()
    if not weights_path.is_relative_to(folder):
        raise UnsafePackageError(
            f"The model definition '{path}' names weights outside its folder ('{model_file}')."
        )
    if not weights_path.is_file():
        raise PackageError(
            f"The weights '{model_file}' (the ModelFile of '{path}') are not beside it in {folder}."
        )
    size = weights_path.stat().st_size
    if size > MAX_MEMBER_BYTES:
        raise UnsafePackageError(f"The weights '{weights_path}' are {_gb(size)}; refused.")
    code_file = _code_file(emd)
    code: dict[str, bytes] = {}
    name = None
    if code_file is not None:
        if not trust_code:
            raise UnsafePackageError(
                f"The model definition '{path}' is refused: its InferenceFunction names Python "
                f"code ('{emd['InferenceFunction']}'), and such code runs only when you trust "
                "it explicitly."
            )
        name = _member_path(code_file, f"the InferenceFunction of '{path}'")
        code_path = (folder / name).resolve()
        if not code_path.is_relative_to(folder) or not code_path.is_file():
            raise PackageError(f"The inference function '{code_file}' is not beside '{path}'.")
        code = {name: code_path.read_bytes()}
    state = _load_weights(weights_path.read_bytes(), f"'{weights_path}'") if weights else {}
    return LoadedPackage(emd=emd, state_dict=state, members=[path.name, model_file],
                         path=str(path), inference_function=name, code=code)  # fmt: skip


def read_package(path, *, trust_code: bool = False, weights: bool = True) -> LoadedPackage:
    """A .emd (with its weights beside it) or a .dlpk, by the file's name."""
    if Path(path).suffix.lower() == ".emd":
        return read_emd(path, trust_code=trust_code, weights=weights)
    return read_dlpk(path, trust_code=trust_code, weights=weights)
