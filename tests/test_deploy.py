"""The deployment files agree with the code: template.yaml, the Dockerfile, the docs.

Every handler they name must be a function in ``handler.py``, every file they copy or
name must exist, and the image must be buildable from the runtime requirements alone.

The staging tests build what the Lambda image holds: a folder with exactly what the
Dockerfile copies and a fresh virtual environment with only ``requirements.txt``
installed (about a minute with a warm pip cache; built once for the module). From
there they answer every sample event in ``events/``, with the bucket events served by
real object stores on 127.0.0.1 (moto for S3, the Cloud Storage emulator for GCS).
These tests and the wheel check use pip, so they need the package index, as the
project's own set-up does.
"""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import yaml

from tests.media import make_clip

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCS = [ROOT / "docs" / "deploy.md", ROOT / "README.md"]
EVENTS = ROOT / "events"

# The operating system under each AWS Lambda Python base image, by Python version:
# 3.11 and older run on Amazon Linux 2 (glibc 2.26), 3.12 and newer on Amazon Linux
# 2023 (glibc 2.34). Source: the "Lambda runtimes" page of the AWS Lambda guide.
LAMBDA_IMAGE_GLIBC = {
    "3.9": 26,
    "3.10": 26,
    "3.11": 26,
    "3.12": 34,
    "3.13": 34,
    "3.14": 34,
}

# What the Lambda Python base image provides beside the function's own packages.
LAMBDA_RUNTIME_PACKAGES = ["boto3"]

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short tags as ``{"!Tag": value}``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _tagged)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)


def template_functions() -> dict[str, dict[str, Any]]:
    resources = load_template()["Resources"]
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def template_handler_names() -> list[str]:
    names = []
    for properties in template_functions().values():
        if properties.get("PackageType") == "Image":
            names.append(properties["ImageConfig"]["Command"][0])
        else:
            names.append(properties["Handler"])
    return names


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_copies() -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context."""
    copies = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in arguments:
            *sources, destination = arguments.split()
            copies.extend((source, destination) for source in sources)
    return copies


def dockerfile_python_version() -> str:
    base = next(
        args for keyword, args in dockerfile_instructions() if keyword == "FROM"
    )
    match = re.fullmatch(r"public\.ecr\.aws/lambda/python:(\d+\.\d+)\S*", base)
    assert match, f"the Dockerfile is not built on the AWS Lambda Python image: {base}"
    return match.group(1)


def docs_text() -> str:
    return "\n".join(path.read_text() for path in DOCS if path.exists())


def resolve(dotted: str) -> Any:
    module_name, _, attribute = dotted.rpartition(".")
    assert module_name == "handler", f"{dotted} is not in handler.py"
    import handler

    assert hasattr(handler, attribute), f"handler.py has no {attribute}"
    return getattr(handler, attribute)


def test_every_handler_in_the_template_is_a_lambda_handler_in_handler_py() -> None:
    names = template_handler_names()

    assert names
    for name in names:
        function = resolve(name)
        assert inspect.isfunction(function)
        inspect.signature(function).bind({}, None)


def test_the_dockerfile_cmd_names_the_same_lambda_handler_as_the_template() -> None:
    cmd = next(args for keyword, args in dockerfile_instructions() if keyword == "CMD")
    command = json.loads(cmd)

    assert len(command) == 1
    assert inspect.isfunction(resolve(command[0]))
    assert set(template_handler_names()) == {command[0]}


def test_every_entry_point_in_the_docs_is_a_plain_function_in_handler_py() -> None:
    # functions-framework accepts only a plain function as its target.
    targets = re.findall(r"--(?:entry-point|target)[= ]+(\w+)", docs_text())

    assert {"sign2text_http", "sign2text_gcs"} <= set(targets)
    for target in targets:
        assert inspect.isfunction(resolve(f"handler.{target}")), target


def test_the_docs_name_the_function_source_file_that_holds_the_entry_points() -> None:
    text = docs_text()
    sources = re.findall(r"(?:--source[= ]+|GOOGLE_FUNCTION_SOURCE=)(\S+\.py)", text)

    assert "GOOGLE_FUNCTION_SOURCE=handler.py" in text
    assert sources
    assert set(sources) == {"handler.py"}


def test_every_event_file_and_function_the_docs_invoke_exists() -> None:
    text = docs_text()
    event_files = set(re.findall(r"events/[\w.-]+\.json", text))
    invoked = set(re.findall(r"sam local invoke (\w+)", text))
    logged = set(re.findall(r"sam logs .*--name (\w+)", text))

    assert event_files
    assert invoked
    missing = sorted(name for name in event_files if not (ROOT / name).is_file())
    assert not missing, f"the docs name event files that do not exist: {missing}"
    assert invoked | logged <= set(template_functions())


def test_every_copy_source_in_the_dockerfile_exists() -> None:
    copies = dockerfile_copies()

    assert copies
    for source, destination in copies:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert destination.startswith("${LAMBDA_TASK_ROOT}/"), destination


def ignored_by(ignore_file: Path, name: str) -> bool:
    """Whether a top-level file or folder matches a pattern of a .dockerignore-style
    file (only the plain patterns these files use: names, globs, trailing slashes)."""
    for line in ignore_file.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith(("#", "!")):
            continue
        pattern = pattern.removeprefix("**/").removeprefix("/").rstrip("/")
        if fnmatch.fnmatch(name, pattern):
            return True
    return False


def test_the_dockerignore_keeps_every_copy_source() -> None:
    for source, _ in dockerfile_copies():
        name = source.rstrip("/")
        assert not ignored_by(ROOT / ".dockerignore", name), name


def test_the_gcloudignore_uploads_the_function_source_and_no_tests() -> None:
    gcloudignore = ROOT / ".gcloudignore"
    kept = ["handler.py", "adapters", "sign2text_core", "models", "requirements.txt"]
    left_out = [".venv", ".git", "tests", "benchmarks", "requirements-dev.txt"]

    assert [name for name in kept if ignored_by(gcloudignore, name)] == []
    assert all(ignored_by(gcloudignore, name) for name in left_out)


def test_the_dockerfile_installs_only_the_runtime_requirements() -> None:
    installs = [
        args for keyword, args in dockerfile_instructions() if "pip install" in args
    ]

    assert len(installs) == 1
    words = installs[0].split("pip install", 1)[1].split()
    requirement_files = [words[i + 1] for i, word in enumerate(words) if word == "-r"]
    named = [w for w in words if not w.startswith("-") and w not in requirement_files]
    assert requirement_files == ["${LAMBDA_TASK_ROOT}/requirements.txt"]
    assert named == ["${LAMBDA_TASK_ROOT}"], f"packages named outside it: {named}"


def template_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every HTTP API route in the template."""
    return {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for properties in template_functions().values()
        for event in properties.get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }


def test_every_route_in_the_template_is_served_by_lambda_handler() -> None:
    from tests.web_servers import lambda_server

    api = lambda_server().client
    routes = template_routes()

    assert routes
    for method, path in routes:
        # An empty request may be refused, but by the route, not for want of one.
        status = api.request(method, path).status_code
        assert status not in (404, 405), f"{method} {path} answered {status}"


def test_every_operation_in_the_openapi_document_is_routed_by_the_template() -> None:
    from tests.web_servers import lambda_server

    response = lambda_server().client.get("/openapi.json")

    assert response.status_code == 200
    documented = {
        (method.upper(), path)
        for path, operations in response.json()["paths"].items()
        for method in operations
    }
    assert documented
    assert documented <= template_routes()


def s3_triggers() -> list[dict[str, Any]]:
    return [
        event["Properties"]
        for properties in template_functions().values()
        for event in properties.get("Events", {}).values()
        if event["Type"] == "S3"
    ]


def test_result_documents_cannot_trigger_the_function() -> None:
    resources = load_template()["Resources"]
    triggers = s3_triggers()
    notified_buckets = [
        resources[trigger["Bucket"]["!Ref"]]["Properties"]["BucketName"]
        for trigger in triggers
    ]

    assert triggers, "no S3 trigger in the template"
    for trigger in triggers:
        rules = trigger["Filter"]["S3Key"]["Rules"]
        assert "prefix" in {rule["Name"] for rule in rules}
    for properties in template_functions().values():
        # Results go to a bucket that no trigger listens to.
        results_bucket = properties["Environment"]["Variables"][
            "SIGN2TEXT_RESULTS_BUCKET"
        ]
        assert results_bucket not in notified_buckets


def test_policies_name_buckets_by_string_not_by_resource() -> None:
    # A policy that references the notifying bucket makes a circular dependency.
    buckets = {
        name
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::S3::Bucket"
    }
    for properties in template_functions().values():
        policies = json.dumps(properties.get("Policies", []))
        for bucket in buckets:
            assert f'"!Ref": "{bucket}"' not in policies
            assert f'"!GetAtt": "{bucket}' not in policies


def test_every_environment_variable_in_the_template_is_read_by_the_code() -> None:
    sources = [ROOT / "handler.py"]
    sources += sorted((ROOT / "adapters").rglob("*.py"))
    sources += sorted((ROOT / "sign2text_core").rglob("*.py"))
    code = "\n".join(path.read_text() for path in sources)

    for properties in template_functions().values():
        for name in properties["Environment"]["Variables"]:
            assert f'"{name}"' in code, f"{name} is set but nothing reads it"


def test_runtime_requirements_have_wheels_for_the_lambda_image(
    tmp_path: Path,
) -> None:
    """Asks PyPI (through pip) for a wheel of every runtime requirement that the
    Lambda image's Python and glibc can load; an image build would otherwise fail."""
    python = dockerfile_python_version()
    glibc_minor = LAMBDA_IMAGE_GLIBC[python]
    platforms = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
    platforms += [f"manylinux_2_{minor}_x86_64" for minor in range(5, glibc_minor + 1)]
    command = [sys.executable, "-m", "pip", "download", "--quiet"]
    command += ["--disable-pip-version-check", "--only-binary=:all:"]
    command += ["--python-version", python, "--implementation", "cp"]
    for platform in platforms:
        command += ["--platform", platform]
    command += ["-r", str(ROOT / "requirements.txt"), "-d", str(tmp_path)]

    run = subprocess.run(command, capture_output=True, text=True, timeout=300)

    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR")]
    assert run.returncode == 0, "\n".join(errors)


# What CloudFormation would substitute for the pseudo parameters of a test stack.
STACK_FACTS = {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1"}


def template_environment(task_root: Path) -> dict[str, str]:
    """The function's environment variables with the template's parameter defaults,
    as CloudFormation would set them; /var/task (the Lambda task root) is
    `task_root`."""
    template = load_template()
    defaults = {
        name: str(parameter.get("Default", ""))
        for name, parameter in template["Parameters"].items()
    }
    facts = STACK_FACTS | defaults

    def resolved(value: Any) -> str:
        if isinstance(value, dict) and "!Ref" in value:
            return facts[value["!Ref"]]
        if isinstance(value, dict) and "!Sub" in value:
            return re.sub(r"\$\{([\w:]+)\}", lambda m: facts[m.group(1)], value["!Sub"])
        return str(value)

    environment = {}
    for properties in template_functions().values():
        for name, value in properties["Environment"]["Variables"].items():
            text = resolved(value)
            if text.startswith("/var/task/"):
                text = str(task_root / text.removeprefix("/var/task/"))
            environment[name] = text
    return environment


@dataclass
class Staging:
    """A copy of what the image holds, and an interpreter with only its packages."""

    task_root: Path
    python: Path
    lambda_runtime: Path


def _copy_ignoring_caches(source: Path, destination: Path) -> None:
    if source.is_dir():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(source, destination, ignore=ignore, dirs_exist_ok=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def _pip_install(python: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start pip (this environment's) installing into `python`'s environment."""
    command = [sys.executable, "-m", "pip", "--python", str(python), "install"]
    command += ["--quiet", "--disable-pip-version-check", "--no-compile", *args]
    return subprocess.Popen(command)


def _wait(*installs: subprocess.Popen[bytes]) -> None:
    for install in installs:
        assert install.wait(timeout=900) == 0, f"pip failed: {install.args}"


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Staging:
    """SLOW (under a minute with a warm pip cache): the image's files and a fresh
    venv with requirements.txt only. Built once per module.

    The Lambda base image also provides boto3; it goes into a separate folder that
    only the Lambda invocations put on their path, as the image does with its
    runtime folder.
    """
    if not (ROOT / "handler.py").is_file():
        pytest.skip("handler.py is not there yet")
    folder = tmp_path_factory.mktemp("staging")
    task_root = folder / "task"
    for source, destination in dockerfile_copies():
        target = task_root / destination.replace("${LAMBDA_TASK_ROOT}/", "", 1)
        if (ROOT / source).is_file() and destination.endswith("/"):
            target = target / Path(source).name
        _copy_ignoring_caches(ROOT / source, target)

    venv = folder / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    lambda_runtime = folder / "lambda-runtime"
    _wait(
        _pip_install(python, "-r", str(task_root / "requirements.txt")),
        _pip_install(python, "--target", str(lambda_runtime), *LAMBDA_RUNTIME_PACKAGES),
    )
    return Staging(task_root=task_root, python=python, lambda_runtime=lambda_runtime)


# Runs in the staged interpreter, isolated (-I): only the task root, and for Lambda
# the base image's runtime packages, are on the path, as in the image. It answers
# each event file of its plan in turn, so the model loads once per platform.
DRIVER = """
import json, sys, traceback, types
task_root, runtime, plan_file = sys.argv[1:4]
sys.path[:0] = [task_root] + ([runtime] if runtime else [])

import handler
heavy = sorted(m for m in ("onnxruntime", "cv2", "fastapi", "flask")
               if m in sys.modules)

def lambda_context():
    return types.SimpleNamespace(
        aws_request_id="staging-0001",
        function_name="sign2text",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:sign2text",
        memory_limit_in_mb=2048,
        log_group_name="/aws/lambda/sign2text",
        log_stream_name="staging",
        get_remaining_time_in_millis=lambda: 60000,
    )

def answer(entry, raw):
    if entry == "lambda_handler":
        return handler.lambda_handler(json.loads(raw), lambda_context())
    from cloudevents.http import from_http
    event = from_http({"content-type": "application/cloudevents+json"}, raw)
    return handler.sign2text_gcs(event)

answers = {}
for event_file, entry in json.loads(open(plan_file).read()):
    try:
        answers[event_file] = {"answer": answer(entry, open(event_file, "rb").read())}
    except Exception:
        answers[event_file] = {"error": traceback.format_exc()}

print(json.dumps({
    "answers": answers,
    "heavy_after_import": heavy,
    "handler_file": handler.__file__,
    "core_file": sys.modules["sign2text_core"].__file__,
}))
"""


def run_staged(
    staging: Staging, plan: list[tuple[Path, str]], env: dict[str, str]
) -> dict[str, Any]:
    """Answer each (event file, entry point) of `plan` in one staged interpreter."""
    folder = staging.task_root.parent
    driver = folder / "driver.py"
    driver.write_text(DRIVER)
    plan_file = folder / f"plan-{plan[0][1]}.json"
    plan_file.write_text(json.dumps([[str(path), entry] for path, entry in plan]))
    uses_lambda = plan[0][1] == "lambda_handler"
    runtime = str(staging.lambda_runtime) if uses_lambda else ""

    arguments = [str(staging.task_root), runtime, str(plan_file)]
    run = subprocess.run(
        [str(staging.python), "-I", str(driver), *arguments],
        capture_output=True,
        text=True,
        cwd=staging.task_root,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=600,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["handler_file"]).parent == staging.task_root
    assert Path(result["core_file"]).parent.parent == staging.task_root
    return result


def event_files(kind: str) -> list[Path]:
    """The sample events in events/ of one kind: "http", "s3" or "cloudevent"."""
    found = []
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if "specversion" in event:
            found_kind = "cloudevent"
        elif "Records" in event or event.get("source") == "aws.s3":
            found_kind = "s3"
        else:
            found_kind = "http"
        if found_kind == kind:
            found.append(path)
    return found


def test_every_sample_event_is_http_s3_or_cloudevent() -> None:
    every = sorted(EVENTS.glob("*.json"))
    sorted_out = event_files("http") + event_files("s3") + event_files("cloudevent")

    assert every
    assert sorted(sorted_out) == every


@pytest.fixture(scope="module")
def object_stores() -> Iterator[ObjectStores]:
    from tests.object_servers import GcsProxy, gcs_emulator, moto_server

    with moto_server() as s3_url, gcs_emulator() as gcs_url:
        # The proxy adds the conditional writes the emulator leaves out.
        proxy = GcsProxy(gcs_url)
        try:
            yield ObjectStores(s3_url=s3_url, gcs_url=proxy.url)
        finally:
            proxy.close()


@dataclass
class ObjectStores:
    s3_url: str
    gcs_url: str


def _create_s3_bucket(url: str, bucket: str) -> None:
    from tests.object_servers import s3_client

    client = s3_client(url)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)


def _upload_s3_objects(url: str, event: dict[str, Any], clip: bytes) -> None:
    """Create each object the event names and put its real ETag and size in it."""
    from tests.object_servers import s3_client

    client = s3_client(url)
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        _create_s3_bucket(url, bucket)
        answer = client.put_object(Bucket=bucket, Key=key, Body=clip)
        record["s3"]["object"]["eTag"] = answer["ETag"].strip('"')
        record["s3"]["object"]["size"] = len(clip)


def _upload_gcs_object(url: str, event: dict[str, Any], clip: bytes) -> None:
    """Create the object the event names and put its real generation and size in it."""
    from tests.object_servers import gcs_client

    client = gcs_client(url)
    data = event["data"]
    bucket = client.bucket(data["bucket"])
    if not bucket.exists():
        client.create_bucket(bucket)
    blob = bucket.blob(data["name"])
    blob.metadata = data.get("metadata")
    blob.upload_from_string(clip, content_type=data.get("contentType", "video/mp4"))
    blob.reload()
    data["generation"] = str(blob.generation)
    data["size"] = str(len(clip))


@dataclass
class StagedAnswers:
    """What the staged entry points answered, by event file name."""

    answers: dict[str, dict[str, Any]]
    heavy_after_import: list[str]


@pytest.fixture(scope="module")
def staged_answers(
    staging: Staging,
    object_stores: ObjectStores,
    small_clip: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> StagedAnswers:
    """Every file in events/ answered by the staged image: the AWS events by
    lambda_handler (with S3 served by moto), the CloudEvents by sign2text_gcs (with
    Cloud Storage served by the emulator). Bucket events are delivered for objects
    the test uploads first, with their real version and size written in."""
    folder = tmp_path_factory.mktemp("delivered")
    clip = small_clip.read_bytes()
    aws_plan = [(path, "lambda_handler") for path in event_files("http")]
    for path in event_files("s3"):
        event = json.loads(path.read_text())
        _upload_s3_objects(object_stores.s3_url, event, clip)
        (folder / path.name).write_text(json.dumps(event))
        aws_plan.append((folder / path.name, "lambda_handler"))
    gcs_plan = []
    for path in event_files("cloudevent"):
        event = json.loads(path.read_text())
        _upload_gcs_object(object_stores.gcs_url, event, clip)
        (folder / path.name).write_text(json.dumps(event))
        gcs_plan.append((folder / path.name, "sign2text_gcs"))

    # The function's environment as the template sets it with its defaults, and
    # the results bucket it names, created beside the uploads.
    aws_environment = template_environment(staging.task_root)
    aws_environment |= {
        "AWS_ENDPOINT_URL": object_stores.s3_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": STACK_FACTS["AWS::Region"],
    }
    _create_s3_bucket(object_stores.s3_url, aws_environment["SIGN2TEXT_RESULTS_BUCKET"])
    gcs_environment = {"STORAGE_EMULATOR_HOST": object_stores.gcs_url}
    answers: dict[str, dict[str, Any]] = {}
    heavy: list[str] = []
    for plan, environment in ((aws_plan, aws_environment), (gcs_plan, gcs_environment)):
        if plan:
            result = run_staged(staging, plan, environment)
            heavy += result["heavy_after_import"]
            answers |= {
                Path(name).name: found for name, found in result["answers"].items()
            }
    return StagedAnswers(answers=answers, heavy_after_import=heavy)


def _answer(staged: StagedAnswers, event_file: Path) -> Any:
    found = staged.answers[event_file.name]
    assert "error" not in found, found.get("error")
    return found["answer"]


def test_importing_the_staged_handler_loads_no_model_and_no_web_framework(
    staged_answers: StagedAnswers,
) -> None:
    assert staged_answers.answers
    assert staged_answers.heavy_after_import == []


@pytest.mark.parametrize("event_file", event_files("http"), ids=lambda p: p.name)
def test_the_staged_lambda_answers_the_http_event(
    staged_answers: StagedAnswers, event_file: Path
) -> None:
    event = json.loads(event_file.read_text())
    path = event.get("rawPath") or event.get("path")

    answer = _answer(staged_answers, event_file)

    status = answer["statusCode"]
    body = json.loads(answer["body"])
    assert status == 200 or 400 <= status < 500, answer
    if status == 200 and path in ("/v1/classify", "/sign"):
        assert isinstance(body.get("label", body.get("target")), str)
    if status >= 400:
        assert body["error"]["code"]


@pytest.mark.parametrize("event_file", event_files("s3"), ids=lambda p: p.name)
def test_the_staged_lambda_classifies_the_s3_event(
    staged_answers: StagedAnswers, object_stores: ObjectStores, event_file: Path
) -> None:
    from tests.object_servers import s3_client

    records = json.loads(event_file.read_text())["Records"]
    results_bucket = template_environment(ROOT)["SIGN2TEXT_RESULTS_BUCKET"]

    outcomes = _answer(staged_answers, event_file)["objects"]

    assert len(outcomes) == len(records)
    assert {outcome["status"] for outcome in outcomes} == {"classified"}
    assert {outcome["result_bucket"] for outcome in outcomes} == {results_bucket}
    client = s3_client(object_stores.s3_url)
    for outcome in outcomes:
        stored = client.get_object(
            Bucket=outcome["result_bucket"], Key=outcome["result_key"]
        )
        document = json.loads(stored["Body"].read())
        assert document["source"]["key"] == outcome["key"]
        assert isinstance(document["prediction"]["label"], str)


@pytest.mark.parametrize("event_file", event_files("cloudevent"), ids=lambda p: p.name)
def test_the_staged_cloud_function_classifies_the_storage_event(
    staged_answers: StagedAnswers, object_stores: ObjectStores, event_file: Path
) -> None:
    from tests.object_servers import gcs_client

    event = json.loads(event_file.read_text())
    assert event["type"] == GCS_FINALIZED

    outcomes = _answer(staged_answers, event_file)["objects"]

    assert [outcome["status"] for outcome in outcomes] == ["classified"]
    client = gcs_client(object_stores.gcs_url)
    blob = client.bucket(outcomes[0]["result_bucket"]).blob(outcomes[0]["result_key"])
    document = json.loads(blob.download_as_bytes())
    assert document["source"]["key"] == event["data"]["name"]
    assert isinstance(document["prediction"]["label"], str)


def test_the_staged_functions_framework_serves_sign2text_http_from_handler_py(
    staging: Staging, tmp_path: Path
) -> None:
    """The local command of the docs, run in the staging folder with its packages."""
    from tests.object_servers import free_port, wait_for_port

    clip = make_clip(tmp_path / "clip.mp4")
    port = free_port()
    framework = staging.python.parent / "functions-framework"
    command = [str(framework), "--source", "handler.py", "--target", "sign2text_http"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command,
        cwd=staging.task_root,
        env={"PATH": os.environ.get("PATH", "")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, timeout_s=30)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/classify",
            data=clip.read_bytes(),
            headers={"content-type": "video/mp4"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            status = response.status
            body = json.loads(response.read())
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert status == 200
    assert isinstance(body["label"], str)
