"""A minimal PEP 517 build backend for the pg_orchestration client, kept in the tree.

Why not setuptools: pip builds a package in an isolated environment and first installs
the backend's requirements there from an index. With no index reachable (PIP_NO_INDEX=1,
an offline machine) that fails before anything is built. This backend needs nothing but
the standard library, so `pip install ./python` works offline. It builds a pure-Python
wheel of one package directory, an sdist, and an editable (PEP 660) wheel.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover - older Pythons with tomli installed
    import tomli as tomllib  # type: ignore[no-redef, import]

ROOT = Path(__file__).resolve().parent.parent
TAG = "py3-none-any"


def _project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        data = tomllib.load(f)
    project: dict[str, Any] = data["project"]
    project["_package"] = data["tool"]["backend"]["package"]
    return project


def _dist_name(project: dict[str, Any]) -> str:
    return str(project["name"]).replace("-", "_")


def _metadata(project: dict[str, Any]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3')}",
    ]
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    readme = ROOT / str(project.get("readme", "README.md"))
    body = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if body:
        lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + body


def _wheel_file() -> str:
    return ("Wheel-Version: 1.0\nGenerator: pg_orchestration-backend\n"
            f"Root-Is-Purelib: true\nTag: {TAG}\n")


def _package_files(project: dict[str, Any]) -> list[Path]:
    package = ROOT / project["_package"]
    return sorted(p for p in package.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(directory: str, files: dict[str, bytes], project: dict[str, Any]) -> str:
    """Writes files plus the .dist-info (METADATA, WHEEL, RECORD) as a wheel; returns its name."""
    dist = f"{_dist_name(project)}-{project['version']}"
    info = f"{dist}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = _metadata(project).encode()
    files[f"{info}/WHEEL"] = _wheel_file().encode()
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel_name = f"{dist}-{TAG}.whl"
    with zipfile.ZipFile(os.path.join(directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return wheel_name


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Any = None) -> str:
    project = _project()
    info = f"{_dist_name(project)}-{project['version']}.dist-info"
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    Path(metadata_directory, info, "METADATA").write_text(_metadata(project), encoding="utf-8")
    Path(metadata_directory, info, "WHEEL").write_text(_wheel_file(), encoding="utf-8")
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory: str, config_settings: Any = None,
                metadata_directory: Any = None) -> str:
    project = _project()
    files = {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in _package_files(project)}
    return _write_wheel(wheel_directory, files, project)


def build_editable(wheel_directory: str, config_settings: Any = None,
                   metadata_directory: Any = None) -> str:
    # A .pth file that puts this directory on sys.path: edits show without reinstalling.
    project = _project()
    files = {f"{_dist_name(project)}.pth": (str(ROOT) + "\n").encode()}
    return _write_wheel(wheel_directory, files, project)


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    project = _project()
    base = f"{_dist_name(project)}-{project['version']}"
    members = [ROOT / "pyproject.toml", ROOT / "_build" / "backend.py", *_package_files(project)]
    readme = ROOT / str(project.get("readme", "README.md"))
    if readme.is_file():
        members.append(readme)
    pkg_info = _metadata(project).encode()
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for path in members:
            tf.add(path, arcname=f"{base}/{path.relative_to(ROOT).as_posix()}", recursive=False)
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(pkg_info)
        tf.addfile(info, io.BytesIO(pkg_info))
    return name
