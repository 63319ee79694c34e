"""Every command plans its outputs against its inputs: none writes over a file it reads or into a data set it reads
(`domain-contrast --out DATA/manifest.csv --overwrite` once replaced the data set's manifest with JSON)."""
import hashlib
from pathlib import Path

import pytest
from helpers import write_png_domains, write_tiny_checkpoint

from MedShiftLib.cli import main


@pytest.fixture
def files(tmp_path):
    data = write_png_domains(tmp_path / "DATA", domains=("a", "b", "c"), subjects=2, views=1, size=32)
    (data / "manifest.csv").write_text("file,domain\na/s0_v0.png,a\n")
    model = write_tiny_checkpoint(tmp_path / "runs" / "best.safetensors")
    ct = tmp_path / "ct_series"
    ct.mkdir()
    (ct / "slice1.dcm").write_bytes(b"not really a slice, but the folder is the input")
    deb = tmp_path / "fetched" / "cranium_ct.nrrd"
    deb.parent.mkdir()
    deb.write_bytes(b"a CT file")
    return {"DATA": data, "MODEL": model, "RUNS": model.parent, "CT": ct, "DEB": deb}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


CONTRAST = "domain-contrast --model MODEL --data DATA --out"
COMMANDS = {
    "domain-contrast over the manifest": (f"{CONTRAST} DATA/manifest.csv --overwrite", "inside the data folder"),
    "domain-contrast over a training image": (f"{CONTRAST} DATA/a/s0_v0.png --overwrite", "inside the data folder"),
    "domain-contrast's copy into the data set": (f"{CONTRAST} DATA/copy.safetensors", "inside the data folder"),
    "train over its --init-from checkpoint": ("train DATA --out RUNS --init-from MODEL --steps 1", "--init-from"),
    "evaluate into its test set": ("evaluate --model MODEL --data DATA --train-data DATA --out DATA/results",
                                   "inside the data folder"),
    "demo into the CT it renders": ("demo --model MODEL --ct CT --out CT/demo", "(--ct)"),
    "simulate into the CT it renders": ("simulate CT/sim --ct CT --subjects 1", "(--ct)"),
    "simulate's preview over its CT file": ("simulate OUT --ct DEB --preview DEB --subjects 0", "--ct"),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_no_command_writes_over_its_inputs(files, tmp_path, capsys, name):
    line, needle = COMMANDS[name]
    argv = [str(files.get(word.split("/")[0], tmp_path / word.split("/")[0])) + word[len(word.split("/")[0]):]
            if word.split("/")[0] in files or word == "OUT" else word for word in line.split()]
    before = _digest(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert _digest(tmp_path) == before  # nothing read was touched, nothing written


def test_fetch_ct_does_not_write_over_the_package_it_reads(tmp_path, monkeypatch, capsys):
    from test_fetch_ct import make_fake_deb

    from MedShiftLib.simulator import invesalius_ct
    deb, digest = make_fake_deb(tmp_path / invesalius_ct.OUTPUT_NAME)  # the package saved under the output's name
    monkeypatch.setattr(invesalius_ct.fetch_cranium_ct, "__defaults__", (None, "apt-get", digest))
    before = deb.read_bytes()
    assert main(["fetch-ct", str(tmp_path), "--deb", str(deb)]) == 2
    assert "--deb" in capsys.readouterr().err and deb.read_bytes() == before
