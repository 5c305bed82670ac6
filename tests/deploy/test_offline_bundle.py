"""deploy/bundle.py: offline wheels rebuilt from the venv, the staged project, and the package report."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import PROJECT
from tests.deploy.support import bundle as support_bundle

bundle = support_bundle()


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fake_distribution(root: Path, *, tag: str = "py3-none-any", purelib: bool = True) -> metadata.Distribution:
    """An installed distribution `tinydist` 1.0 as pip would leave it in site-packages."""
    site = root / "site-packages"
    (site / "tinydist").mkdir(parents=True)
    (site / "tinydist" / "__init__.py").write_text("VALUE = 42\n", encoding="utf-8")
    (site / "tinydist" / "__pycache__").mkdir()
    (site / "tinydist" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\x00")
    info = site / "tinydist-1.0.dist-info"
    info.mkdir()
    files = {
        "tinydist/__init__.py": (site / "tinydist" / "__init__.py").read_bytes(),
        "tinydist-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydist\nVersion: 1.0\n",
        "tinydist-1.0.dist-info/WHEEL": (
            f"Wheel-Version: 1.0\nRoot-Is-Purelib: {str(purelib).lower()}\nTag: {tag}\n".encode()
        ),
        "tinydist-1.0.dist-info/INSTALLER": b"pip\n",
    }
    for name, data in files.items():
        (site / name).write_bytes(data)
    record = [f"{name},{_hash(data)},{len(data)}" for name, data in files.items()]
    record += ["tinydist/__pycache__/__init__.cpython-311.pyc,,", "../../../bin/tiny,sha256=x,1"]
    record.append("tinydist-1.0.dist-info/RECORD,,")
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")
    return metadata.PathDistribution(info)


# --- wheels ------------------------------------------------------------------------------------------------


def test_a_rebuilt_wheel_holds_the_installed_files_with_a_valid_record(tmp_path: Path) -> None:
    dist = fake_distribution(tmp_path)
    wheel = bundle.build_wheel(dist, tmp_path)
    assert wheel.path.name == "tinydist-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel.path) as archive:
        names = set(archive.namelist())
        record = archive.read("tinydist-1.0.dist-info/RECORD").decode().splitlines()
        contents = {n: archive.read(n) for n in names}
    # no bytecode, no console scripts, no installer marker
    assert names == {
        "tinydist/__init__.py",
        "tinydist-1.0.dist-info/METADATA",
        "tinydist-1.0.dist-info/WHEEL",
        "tinydist-1.0.dist-info/RECORD",
    }
    for line in record:
        name, digest, size = line.split(",")
        if name.endswith("RECORD"):
            assert (digest, size) == ("", "")
        else:
            assert (digest, int(size)) == (_hash(contents[name]), len(contents[name]))


def test_pip_installs_a_rebuilt_wheel_offline(tmp_path: Path) -> None:
    wheel = bundle.build_wheel(fake_distribution(tmp_path / "src"), tmp_path)
    target = tmp_path / "target"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel.path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": "/dev/null"},
    )
    assert result.returncode == 0, result.stderr
    assert (target / "tinydist" / "__init__.py").read_text(encoding="utf-8") == "VALUE = 42\n"


def test_rebuilt_wheels_are_reproducible(tmp_path: Path) -> None:
    dist = fake_distribution(tmp_path / "src")
    first = bundle.build_wheel(dist, tmp_path).path.read_bytes()
    second = bundle.build_wheel(dist, tmp_path).path.read_bytes()
    assert first == second


def test_a_file_changed_since_installation_is_refused(tmp_path: Path) -> None:
    dist = fake_distribution(tmp_path)
    (tmp_path / "site-packages" / "tinydist" / "__init__.py").write_text("VALUE = 'patched'\n", encoding="utf-8")
    with pytest.raises(bundle.BundleError, match="differs from what pip installed"):
        bundle.build_wheel(dist, tmp_path)


@pytest.mark.parametrize(
    ("tag", "purelib"), [("cp311-cp311-manylinux_2_17_x86_64", False), ("cp311-abi3-linux_x86_64", True)]
)
def test_a_compiled_distribution_is_refused(tmp_path: Path, tag: str, purelib: bool) -> None:
    dist = fake_distribution(tmp_path, tag=tag, purelib=purelib)
    with pytest.raises(bundle.BundleError, match="not pure Python"):
        bundle.build_wheel(dist, tmp_path)


def test_the_closure_of_requirements_txt_is_the_runtime_set() -> None:
    closure = {metadata_name(d) for d in bundle.runtime_closure(bundle.read_requirements(PROJECT / "requirements.txt"))}
    assert closure >= {"boto3", "botocore", "s3transfer", "jmespath", "aws-lambda-powertools", "python-dateutil"}
    assert not closure & {"chalice", "click", "pytest", "moto", "cfn-lint", "mypy", "ruff"}


def metadata_name(dist: metadata.Distribution) -> str:
    return str(dist.metadata["Name"]).lower().replace("_", "-")


def test_a_requirement_the_venv_cannot_meet_is_an_error(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("boto3<1.0\n", encoding="utf-8")
    with pytest.raises(bundle.BundleError, match="is installed but"):
        bundle.runtime_closure(bundle.read_requirements(requirements))
    requirements.write_text("surely-not-installed-dist==1\n", encoding="utf-8")
    with pytest.raises(bundle.BundleError, match="not installed"):
        bundle.runtime_closure(bundle.read_requirements(requirements))


@pytest.mark.parametrize("line", ["-r other.txt", "--index-url https://example.invalid/simple"])
def test_pip_options_in_requirements_are_refused(tmp_path: Path, line: str) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# comment\n{line}\n", encoding="utf-8")
    with pytest.raises(bundle.BundleError, match="pip options"):
        bundle.read_requirements(requirements)


def test_the_wheelhouse_replaces_stale_wheels(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("jmespath\n", encoding="utf-8")
    stale = tmp_path / "house" / "jmespath-99.0-py3-none-any.whl"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    wheels = bundle.build_wheelhouse(requirements, tmp_path / "house")
    assert [w.name for w in wheels] == ["jmespath"]
    assert sorted(p.name for p in (tmp_path / "house").iterdir()) == [f"jmespath-{wheels[0].version}-py3-none-any.whl"]


# --- staging and the report ---------------------------------------------------------------------------------


def test_staging_copies_what_chalice_deploys_without_bytecode(tmp_path: Path) -> None:
    copied = bundle.stage_project(PROJECT, tmp_path / "src")
    assert set(copied) >= {"app.py", "requirements.txt", "chalicelib", "policies", ".chalice/config.json"}
    staged = {p.relative_to(tmp_path / "src").as_posix() for p in (tmp_path / "src").rglob("*") if p.is_file()}
    assert "chalicelib/adapters/aws.py" in staged and ".chalice/resources.json" in staged
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in staged)
    assert not any(p.startswith((".chalice/deployments", ".chalice/deployed", "tests/", ".venv/")) for p in staged)


def test_staging_never_replaces_the_project(tmp_path: Path) -> None:
    with pytest.raises(bundle.BundleError, match="holds the project"):
        bundle.stage_project(PROJECT, PROJECT)
    with pytest.raises(bundle.BundleError, match="holds the project"):
        bundle.stage_project(PROJECT, PROJECT.parent)


def _zip(path: Path, names: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in names.items():
            archive.writestr(name, data)


def test_the_report_flags_a_dependency_chalice_left_out(tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    _zip(
        house / "tinydist-1.0-py3-none-any.whl", {"tinydist-1.0.dist-info/METADATA": b"x", "tinydist/__init__.py": b""}
    )
    dist = tmp_path / "dist"
    dist.mkdir()
    _zip(dist / "deployment.zip", {"app.py": b""})
    with pytest.raises(bundle.BundleError, match=re.escape("lacks dependencies: tinydist-1.0-py3-none-any.whl")):
        bundle.report(dist, house)
    _zip(dist / "deployment.zip", {"app.py": b"", "tinydist-1.0.dist-info/METADATA": b"x"})
    lines = bundle.report(dist, house)
    assert lines[0].startswith("deployment.zip: ") and "zipped (limit 50.0 MiB)" in lines[0]


def test_the_report_fails_a_package_over_lambdas_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _zip(tmp_path / "deployment.zip", {"app.py": b"x" * 4096})
    monkeypatch.setattr(bundle, "LAMBDA_UNZIPPED_LIMIT", 1024)
    with pytest.raises(bundle.BundleError, match="exceeds Lambda's limits"):
        bundle.report(tmp_path)


# --- the runtime, the template, the bytecode ------------------------------------------------------------


def test_an_unsupported_runtime_is_refused() -> None:
    with pytest.raises(bundle.BundleError, match="not supported"):
        bundle.runtime_version("python3.11")
    assert bundle.runtime_version("python3.13") == "3.13"


def test_the_runtimes_interpreter_must_run_and_be_that_version(tmp_path: Path) -> None:
    with pytest.raises(bundle.BundleError, match=r"no Python 3\.13 interpreter.*cannot run it"):
        bundle.find_python("python3.13", str(tmp_path / "python3.13"))
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    other = "python3.12" if here != "3.12" else "python3.13"
    with pytest.raises(bundle.BundleError, match=f"it is Python {here}.*PYTHON_RUNTIME="):
        bundle.find_python(other, sys.executable)


def test_pyenvs_copy_is_found_when_the_name_is_not_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a pyenv root holding a 3.13 (a script standing in for the interpreter) and no python3.13 on the PATH
    fake = tmp_path / "versions" / "3.13.0" / "bin" / "python3.13"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\necho 3.13\necho {fake}\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert bundle.find_python("python3.13") == fake


def _template(*, with_deny: bool = True) -> dict[str, Any]:
    statement = {"Sid": "NeverTouchOwnRoles", "Effect": "Deny", "Action": "iam:UpdateAssumeRolePolicy"}
    keep = {"Sid": "ReadRoles", "Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}
    resources: dict[str, Any] = {
        "FnRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {"Policies": [{"PolicyDocument": {"Statement": [keep, {**statement, "Resource": "x"}]}}]},
        },
        "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "python3.11"}},
    }
    if with_deny:
        resources["OwnRolesDeny"] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "Roles": [{"Ref": "FnRole"}],
                "PolicyDocument": {"Statement": [{**statement, "Resource": [{"Fn::GetAtt": ["FnRole", "Arn"]}]}]},
            },
        }
    return {"Resources": resources}


def test_finalizing_pins_the_runtime_and_moves_the_own_roles_deny() -> None:
    template = _template()
    bundle.finalize_template(template, "python3.13")
    assert template["Resources"]["Fn"]["Properties"]["Runtime"] == "python3.13"
    statements = template["Resources"]["FnRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == ["ReadRoles"]


def test_the_static_deny_stays_unless_the_stack_states_its_own() -> None:
    with pytest.raises(bundle.BundleError, match="FnRole"):
        bundle.finalize_template(_template(with_deny=False), "python3.13")


def test_bytecode_is_added_beside_every_module_and_nothing_else_changes(tmp_path: Path) -> None:
    package = tmp_path / "deployment.zip"
    files = {"app.py": b"VALUE = 1\n", "lib/__init__.py": b"", "lib/data.json": b"{}"}
    _zip(package, files)
    compiled = bundle.precompile(package, Path(sys.executable))
    assert compiled.modules == 2
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        assert {n: archive.read(n) for n in files} == files  # the sources, byte for byte
        pyc = archive.read(f"lib/__pycache__/__init__.{tag}.pyc")
    assert names == {*files, f"__pycache__/app.{tag}.pyc", f"lib/__pycache__/__init__.{tag}.pyc"}
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
    with pytest.raises(bundle.BundleError, match="already holds bytecode"):
        bundle.precompile(package, Path(sys.executable))


def test_a_dependency_that_differs_on_the_runtimes_python_is_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text('jmespath ; python_version < "3.13"\n', encoding="utf-8")
    if sys.version_info >= (3, 13):
        pytest.skip("the marker holds on the build machine's Python only below 3.13")
    with pytest.raises(bundle.BundleError, match=r"differ on Python 3\.13"):
        bundle.same_closure_for(requirements, "3.13")
    assert bundle.same_closure_for(PROJECT / "requirements.txt", "3.13")
