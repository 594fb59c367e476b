"""Sweep configs: validation errors name the YAML path and the value, exit 2 before Ray starts and
before anything is written; overrides, dry runs and the expansion into points."""

import re
import shutil
import subprocess

import pytest
import yaml

from sweeps.cli import main
from sweeps.config.points import expand
from sweeps.config.reading import bundled_configs, config_text, read_config
from sweeps.errors import UsageError
from tests.helpers import ROOT, SMALL, VENV_BIN, deep_update, write_config

# an address where no Ray listens: had the command got as far as Ray, it would exit 1, not 2
NO_RAY = ["--address", "127.0.0.1:1"]

BAD_CONFIGS = [
    (
        {"search": {"penalties": {"l2": {"lam": [-1]}}}},
        r"search.penalties.l2.lam: must be >= 0, got -1",
    ),
    (
        {"search": {"penalties": {"l2": {"lam": {"logspace": [-3, 1]}}}}},
        r"search.penalties.l2.lam.logspace: must be \[lo, hi, n\].*got \[-3, 1\]",
    ),
    ({"search": {"penalties": {"l3": {"lam": [1]}}}}, r"search.penalties.l3: unknown key"),
    (
        {"search": {"penalties": {"none": {"lam": [0.1]}}}},
        r"search.penalties.none.lam: unknown key",
    ),
    (
        {"search": {"penalties": {"dropout": {"keep_prob": [0.0]}}}},
        r"search.penalties.dropout.keep_prob: must be > 0, got 0.0",
    ),
    (
        {"search": {"penalties": {"elasticnet": {"lam": [1], "l1_ratio": [1.5]}}}},
        r"search.penalties.elasticnet.l1_ratio: must be <= 1, got 1.5",
    ),
    ({"search": {"depths": []}}, r"search.depths: must not be empty, got \[\]"),
    ({"search": {"depths": [1, 1]}}, r"search.depths: values must be unique, got \[1, 1\]"),
    ({"search": {"seeds": ["a"]}}, r"search.seeds: must be an integer, got 'a'"),
    ({"model": {"epochs": 2.5}}, r"model.epochs: must be an integer, got 2.5"),
    ({"model": {"learning_rate": 0}}, r"model.learning_rate: must be > 0, got 0"),
    (
        {"model": {"activation": "sigmoid"}},
        r"model.activation: must be one of 'relu' or 'tanh', got 'sigmoid'",
    ),
    ({"model": {"epoch": 10}}, r"model.epoch: unknown key, got 10"),
    ({"model": {"penalize_bias": "yes"}}, r"model.penalize_bias: must be true or false, got 'yes'"),
    ({"dataset": {"name": "mnist"}}, r"dataset.name: must be one of .*got 'mnist'"),
    ({"dataset": {"noise": -0.5}}, r"dataset.noise: must be >= 0, got -0.5"),
    (
        {"dataset": {"split": {"train": 0.8, "dev": 0.0, "test": 0.2}}},
        r"dataset.split.dev: must be > 0",
    ),
    (
        {"dataset": {"split": {"train": 0.5, "dev": 0.2, "test": 0.2}}},
        r"dataset.split: train \+ dev \+ test must be 1",
    ),
    (
        {
            "dataset": {
                "name": "file",
                "path": "missing.csv",
                "target": "y",
                "n_samples": None,
                "noise": None,
            }
        },
        r"dataset.path: no such file 'missing.csv' \(looked for '/.*/missing.csv'\)",
    ),
    (
        {"dataset": {"split": {"kfold": 1}}},
        r"dataset.split.kfold: must be >= 2, got 1",
    ),
    (
        {"dataset": {"split": {"kfold": 5, "repeats": 0}}},
        r"dataset.split.repeats: must be >= 1, got 0",
    ),
    (
        {"dataset": {"split": {"kfold": 5, "dev": 0.2}}},
        r"dataset.split.dev: does not go with kfold .*, got 0.2",
    ),
    (
        # 120 moons, 20% held out: 48 of each class are left for the folds
        {"dataset": {"split": {"kfold": 49, "test": 0.2}}},
        r"dataset.split.kfold: 49 folds need 49 samples of every class .* has 48, got 49",
    ),
    ({"register": "team/model"}, r"register: .*cannot contain '/' or ':', got 'team/model'"),
    ({"select": "test_cost"}, r"select: must be one of 'dev_cost' or 'dev_error', got 'test_cost'"),
    (
        {"search": {"penalties": {"l2": {"lam": {"bracket": [10, 0.1]}}}}},
        r"search.penalties.l2.lam.bracket: must be \[low, high\] with 0 < low < high",
    ),
    (
        {"search": {"penalties": {"l2": {"lam": {"bracket": [0.1, 10], "tol": 0}}}}},
        r"search.penalties.l2.lam.tol: must be > 0, got 0",
    ),
    (
        {"search": {"penalties": {"dropout": {"keep_prob": {"bracket": [0.5, 1.0]}}}}},
        r"search.penalties.dropout.keep_prob: must be \[low, high\] with high < 1",
    ),
    ({"execution": {"pack_size": 0}}, r"execution.pack_size: must be >= 1, got 0"),
    ({"execution": {"max_failures": -1}}, r"execution.max_failures: must be >= 0, got -1"),
    ({"name": "has space"}, r"name: must be letters, digits.*got 'has space'"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_CONFIGS)
def test_bad_config_exits_2_naming_the_field(tmp_path, capsys, changes, message):
    config = write_config(tmp_path / "bad.yaml", changes)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(
        ["run", str(config), *NO_RAY, "--tracking-uri", f"sqlite:///{tmp_path / 'store.db'}"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store, no files


def test_bad_yaml_and_bad_files(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nsearch: [unclosed\n")
    assert main(["run", str(broken), *NO_RAY]) == 2
    assert "is not valid YAML (line 3)" in capsys.readouterr().err
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    assert main(["run", str(listing), *NO_RAY]) == 2
    assert "must hold a mapping, got list" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.yaml"), *NO_RAY]) == 2
    assert "CONFIG: no such file, got" in capsys.readouterr().err


def test_bad_data_file_exits_2(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("a,b,label\n1,2,0.5\n2,3,1.5\n3,4,0.25\n4,5,1.75\n")
    config = write_config(
        tmp_path / "c.yaml",
        {
            "dataset": {
                "name": "file",
                "path": str(data),
                "target": "label",
                "n_samples": None,
                "noise": None,
            }
        },
    )
    assert main(["run", str(config), *NO_RAY]) == 2
    assert "dataset.target: column 'label' looks continuous" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run"], "the following arguments are required: CONFIG"),
        (
            ["run", "x.yaml", "--set", "model.epochs"],
            "--set: expected KEY.PATH=VALUE, got 'model.epochs'",
        ),
        (["run", "x.yaml", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["compare"], "the following arguments are required: SWEEP_OR_GROUP"),
        (["run", "x.yaml", "--register", "a:b"], "--register: a registered model name cannot"),
        (["run", "x.yaml", "--register", " "], "--register: a registered model name must not"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / "x.yaml")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_overrides_are_validated_too(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml")
    assert main(["run", str(config), "--set", "model.epochs=-3", *NO_RAY]) == 2
    assert "model.epochs: must be >= 1, got -3" in capsys.readouterr().err
    assert main(["run", str(config), "--set", "search.penalties.l2.lam=[0.1, -2]", *NO_RAY]) == 2
    assert "search.penalties.l2.lam: must be >= 0, got -2" in capsys.readouterr().err


def test_overrides_and_dry_run(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml")
    code = main(
        [
            "run",
            str(config),
            "--dry-run",
            "--set",
            "search.seeds=[0]",
            "--set",
            "search.penalties.l2.lam={logspace: [-2, 0, 3]}",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    # none once + 3 l2 + 1 l1, for 2 depths and 1 seed
    assert out.splitlines()[0].startswith("sweep small: 10 points")
    assert list(tmp_path.iterdir()) == [config]  # a dry run writes nothing


def test_expansion():
    raw = deep_update(
        SMALL,
        {
            "search": {
                "depths": [0, 2],
                "widths": [4, 8],
                "seeds": [0, 1],
                "penalties": {
                    "none": {},
                    "l2": {"lam": {"logspace": [-2, 0, 3]}},
                    "elasticnet": {"lam": [1.0], "l1_ratio": [0.2, 0.8]},
                    "dropout": {"keep_prob": [0.5, 0.9]},
                    "l1": None,
                },
            }
        },
    )
    config = read_config_from(raw)
    points = expand(config)
    # per (depth, width): none 1 + l2 3 + elasticnet 2 + dropout 2 = 8, times 2 seeds;
    # depth 0 has a single width (0), depth 2 has two
    assert len(points) == 8 * 2 * 3
    assert {(p.depth, p.width) for p in points} == {(0, 0), (2, 4), (2, 8)}
    l2 = sorted({p.lam for p in points if p.penalty == "l2"})
    assert l2 == pytest.approx([0.01, 0.1, 1.0])
    assert all(p.lam == 0 and p.keep_prob == 1 for p in points if p.penalty == "none")
    # the README: dropout's strength is the drop probability, 1 - keep_prob
    strengths = {p.keep_prob: p.strength for p in points if p.penalty == "dropout"}
    assert strengths == pytest.approx({0.5: 0.5, 0.9: 0.1})
    l2 = sorted({p.strength for p in points if p.penalty == "l2"})
    assert l2 == pytest.approx([0.01, 0.1, 1.0])
    assert len({p.key for p in points}) == len(points)
    again = expand(read_config_from(raw))
    assert [p.key for p in again] == [p.key for p in points]
    other = expand(read_config_from(deep_update(raw, {"model": {"learning_rate": 0.2}})))
    assert not {p.key for p in other} & {p.key for p in points}


def read_config_from(raw):
    from sweeps.config.schema import validate

    return validate(deep_update(raw, {}))


def test_bundled_configs_are_valid_and_found_anywhere(tmp_path, monkeypatch):
    names = sorted(p.stem for p in bundled_configs().glob("*.yaml"))
    assert {"quickstart", "moons-overfit", "digits", "breast-cancer-logreg"} <= set(names)
    monkeypatch.chdir(tmp_path)  # an empty folder: configs/quickstart.yaml resolves to the bundle
    for name in names:
        config, path = read_config(f"configs/{name}.yaml")
        text = config_text(config)
        assert path.parent == bundled_configs()
        assert yaml.safe_load(text)["name"] == config.name == name
        assert (ROOT / "configs" / f"{name}.yaml").read_text().startswith("# ")  # comment header
        assert len(expand(config)) > 0


def test_console_script_and_exit_code(tmp_path):
    """The installed ``sweeps`` entry point exists, and a bad config exits 2 in a real process."""
    script = shutil.which("sweeps", path=str(VENV_BIN)) or shutil.which("sweeps")
    assert script is not None
    config = write_config(tmp_path / "bad.yaml", {"model": {"width": 0}})
    result = subprocess.run(
        [script, "run", str(config), *NO_RAY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: model.width: must be >= 1, got 0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("REGSWEEP_WRITER_MEMORY_MB", "lots", "must be a positive number, got 'lots'"),
        ("REGSWEEP_WRITER_MEMORY_MB", "-5", "must be a positive number, got '-5'"),
        ("REGSWEEP_WRITER_DRAIN_SECONDS", "inf", "must be a positive number, got 'inf'"),
        ("REGCORE_ENGINE", "fast", "must be one of auto, numpy, compiled, got 'fast'"),
    ],
)
def test_bad_environment_variables_are_bad_input(
    tmp_path, monkeypatch, capsys, variable, value, message
):
    """Named with their value, exit 2, before anything is written."""
    config = write_config(tmp_path / "ok.yaml", {})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    assert main(["run", str(config), *NO_RAY]) == 2
    assert capsys.readouterr().err.strip() == f"error: {variable}: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.yaml"]


@pytest.mark.integration
def test_resume_with_another_config_is_refused_before_ray_starts(tmp_path, capsys):
    from sweeps.config.reading import config_text, read_config
    from sweeps.store import tracking

    config_path = write_config(tmp_path / "c.yaml", {"name": "kept"})
    config, _ = read_config(str(config_path))
    text = config_text(config)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = tracking.client_for(uri)
    tracking.start_sweep(client, config, text, len(expand(config)))
    code = main(
        [
            "run",
            str(config_path),
            "--resume",
            "--set",
            "model.epochs=7",
            *NO_RAY,
            "--tracking-uri",
            uri,
        ]
    )
    assert code == 2  # 1 would mean it got as far as the (absent) Ray cluster
    assert "--resume: sweep 'kept'" in capsys.readouterr().err
    assert len(tracking.sweep_runs(client, config.experiment)) == 1


NOTATIONS = [
    # (as written, the number it means)
    ("1e-3", 0.001),
    ("1E-3", 0.001),
    ("+1e-3", 0.001),
    ("1.0e-3", 0.001),
    ("1.e-3", 0.001),
    (".001", 0.001),
    ("+.001", 0.001),
    ("0.001", 0.001),
    ("1e0", 1.0),
    ("2", 2.0),
    ("1_000.5", 1000.5),
]


@pytest.mark.parametrize(("written", "value"), NOTATIONS)
def test_every_number_notation_is_a_number(tmp_path, written, value):
    """In a YAML file (a lambda list) and in --set (a learning rate), the same number."""
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            deep_update(SMALL, {"search": {"penalties": {"l2": {"lam": ["LAMS"]}}}})
        ).replace("- LAMS", f"- {written}")
    )
    config, _ = read_config(str(path), [f"model.learning_rate={written}"])
    assert config.search.penalties.l2.lam == [pytest.approx(value)]
    assert config.model.learning_rate == pytest.approx(value)


@pytest.mark.parametrize(("written", "value"), [("1e3", 1000), ("2E2", 200), ("1_000", 1000)])
def test_whole_numbers_in_any_notation_are_counts(tmp_path, written, value):
    config, _ = read_config(
        str(write_config(tmp_path / "c.yaml")),
        [f"model.epochs={written}", f"search.seeds=[{written}]"],
    )
    assert config.model.epochs == value and config.search.seeds == [value]
    with pytest.raises(UsageError, match=r"model.epochs: must be an integer, got 2.5"):
        read_config(str(tmp_path / "c.yaml"), ["model.epochs=2.5e0"])
