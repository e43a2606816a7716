"""torchrun's variables are checked before anything reads them: each bad class is one ConfigError naming the
variable, never a ValueError from int() or init_process_group (nor a rendezvous waiting for absent peers)."""

import pytest

from sclbench.engine import distributed as D
from sclbench.errors import ConfigError

VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
NOT_WHOLE = ["", " ", "abc", "1.5", "-1", "nan", "1e3", "٣", "99999999999999999999", "\udcff"]


@pytest.fixture
def launch(monkeypatch):
    """A good two-process launch, rank 1; each test spoils one variable."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    good = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for name, value in good.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_a_good_launch_is_read(launch):
    assert D.torchrun_environment() == D.TorchrunEnv(rank=1, world_size=2, local_rank=1)
    assert (D.launch_rank(), D.launch_world_size(), D.local_rank()) == (1, 2, 1)
    launch.setenv("RANK", " 0\n")  # torch's own int() reading accepts surrounding whitespace
    assert D.launch_rank() == 0


def test_a_plain_process_reads_nothing(launch):
    for name in VARIABLES:
        launch.delenv(name)
    assert D.torchrun_environment() is None
    assert (D.launch_rank(), D.launch_world_size(), D.local_rank(), D.launched_by_torchrun()) == (0, 1, 0, False)


@pytest.mark.parametrize("name", ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"])
@pytest.mark.parametrize("value", NOT_WHOLE)
def test_not_a_whole_number_is_named(launch, name, value):
    launch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        D.torchrun_environment()
    blank = not value.strip() and name == "MASTER_PORT"  # a blank port is reported as missing
    expected = "MASTER_PORT is empty" if blank else f"environment variable {name}={value!r} is not a whole number"
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "spoil",
    [
        ("WORLD_SIZE", "0", "WORLD_SIZE='0' is not a whole number from 1"),
        ("RANK", "2", "RANK=2 is not below WORLD_SIZE=2"),
        ("RANK", "7", "RANK=7 is not below WORLD_SIZE=2"),
        ("MASTER_PORT", "65536", "MASTER_PORT=65536 is not a port"),
        ("MASTER_PORT", "0", "MASTER_PORT='0' is not a whole number from 1"),
    ],
)
def test_out_of_range_is_named(launch, spoil):
    name, value, message = spoil
    launch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        D.torchrun_environment()


@pytest.mark.parametrize("missing", ["RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"])
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_a_half_set_launch_is_named(launch, missing, how):
    if how == "unset":
        launch.delenv(missing)
    else:
        launch.setenv(missing, "")
    with pytest.raises(ConfigError, match=missing):
        D.torchrun_environment()


def test_the_rank_alone_needs_no_rendezvous_address(launch):
    """A dataset asks for its rank before the trainer joins the group: the address is not its concern
    (init_distributed checks it), but the rank and world size still are."""
    launch.delenv("MASTER_ADDR")
    launch.delenv("MASTER_PORT")
    assert (D.launch_rank(), D.launch_world_size(), D.local_rank(), D.launched_by_torchrun()) == (1, 2, 1, True)
    launch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="RANK=2 is not below WORLD_SIZE=2"):
        D.launch_rank()


def test_init_distributed_refuses_before_the_process_group(launch):
    """The check comes first in init_distributed: no process group is started with a bad environment."""
    launch.delenv("MASTER_ADDR")
    with pytest.raises(ConfigError, match="MASTER_ADDR is not"):
        D.init_distributed("cpu")
    assert not D.is_initialized()


def test_local_rank_alone_is_checked(launch):
    for name in ("RANK", "WORLD_SIZE"):
        launch.delenv(name)
    assert D.local_rank() == 1
    launch.setenv("LOCAL_RANK", "-3")
    with pytest.raises(ConfigError, match="LOCAL_RANK"):
        D.local_rank()


def test_the_cli_prints_one_error_line(launch, tmp_path, capsys):
    """The front door: `sclbench finetune` with a broken launch is one `error:` line and exit 2, before the
    run folder is locked or any file read (the checkpoint does not even exist)."""
    from sclbench.cli import main

    launch.setenv("WORLD_SIZE", "two")
    rc = main(
        [
            "finetune",
            "f30k",
            "--ckpt",
            str(tmp_path / "none.pt"),
            "--data-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: environment variable WORLD_SIZE='two'") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
