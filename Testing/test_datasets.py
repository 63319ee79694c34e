"""Data folders and the training data set: folder scanning, subject split, items, reproducible crops and loading."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch.utils.data import DataLoader

from MedShiftLib.errors import DataFolderError, DomainError
from MedShiftLib.io.data_folder import ImageRecord, scan_data_folder, split_by_subject, subject_from_file_name
from MedShiftLib.training.dataset import RadiographDomainDataset
from MedShiftLib.training.sampling import EpochPermutationSampler


def write_png(path, seed, shape=(40, 56)):
    """A random 8-bit PNG (non-constant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return pixels


@pytest.fixture
def data_root(tmp_path):
    """Three domains x five subjects x two views; a 'clean' and a hidden folder that must be ignored."""
    root = tmp_path / "data"
    for d, domain in enumerate(("sim-low", "sim-high", "clinical")):
        for s in range(5):
            for v in range(2):
                write_png(root / domain / f"s{s:04d}_v{v:02d}.png", seed=100 * d + 10 * s + v)
    write_png(root / "clean" / "s0000_v00.png", seed=999)
    write_png(root / ".cache" / "s0000_v00.png", seed=998)
    (root / "sim-low" / "notes.txt").write_text("not an image")
    return root


def test_scan_finds_domains_subjects_and_ignores_clean_and_hidden(data_root):
    folder = scan_data_folder(data_root)
    assert folder.domains == ["clinical", "sim-high", "sim-low"]
    assert len(folder.records) == 30
    assert folder.subjects == [f"s{s:04d}" for s in range(5)]
    assert folder.count_by_domain() == {"clinical": 10, "sim-high": 10, "sim-low": 10}
    assert subject_from_file_name("sub-7_a_b.nii.gz") == "sub-7" and subject_from_file_name("x.dcm") == "x"
    ordered = scan_data_folder(data_root, domains=["sim-low", "clinical"])
    assert ordered.domains == ["sim-low", "clinical"] and {r.domain for r in ordered.records} == {"sim-low", "clinical"}


def test_manifest_gives_subjects_and_keeps_extra_columns(data_root):
    with open(data_root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "domain", "subject", "dose", "angle"])
        writer.writerow(["sim-low/s0001_v00.png", "sim-low", "patientA", "0.5", "30"])
        writer.writerow(["sim-high/s0002_v01.png", "sim-high", "patientB", "2.0", "-15"])
    folder = scan_data_folder(data_root)
    assert folder.domains == ["sim-high", "sim-low"] and len(folder.records) == 2
    record = folder.records[0]
    assert record.subject == "patientA" and record.extra == {"dose": "0.5", "angle": "30"}
    assert record.path == data_root / "sim-low" / "s0001_v00.png"


@pytest.mark.parametrize("problem, match", [
    ("missing", "no such data folder"),
    ("no_domains", "no domain sub-folders"),
    ("empty_domain", "holds no images"),
    ("one_domain", "only one domain"),
    ("bad_manifest", "missing column"),
    ("undecodable_manifest", "cannot read the manifest"),
    ("manifest_missing_file", "line 2.*does not exist"),
    ("unknown_order", "no images for domain"),
])
def test_data_folder_errors(tmp_path, problem, match):
    root = tmp_path / "data"
    root.mkdir()
    if problem in ("empty_domain", "one_domain", "bad_manifest", "undecodable_manifest", "manifest_missing_file",
                   "unknown_order"):
        write_png(root / "a" / "s1_v1.png", 1)
    if problem in ("empty_domain",):
        (root / "b").mkdir()
    if problem in ("bad_manifest", "undecodable_manifest", "manifest_missing_file", "unknown_order"):
        write_png(root / "b" / "s2_v1.png", 2)
    if problem == "bad_manifest":
        (root / "manifest.csv").write_text("path,domain\na/s1_v1.png,a\n")
    if problem == "undecodable_manifest":
        (root / "manifest.csv").write_bytes(b"file,domain,subject\n\xff\xfe\xfa,a,s1\n")
    if problem == "manifest_missing_file":
        (root / "manifest.csv").write_text("file,domain,subject\na/gone.png,a,s1\nb/s2_v1.png,b,s2\n")
    target = tmp_path / "nowhere" if problem == "missing" else root
    with pytest.raises(DataFolderError, match=match):
        scan_data_folder(target, domains=["a", "zzz"] if problem == "unknown_order" else None)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_by_subject_never_leaks_and_is_deterministic(data_root, seed):
    folder = scan_data_folder(data_root)
    train, val = split_by_subject(folder, 0.2, seed)
    train_subjects, val_subjects = {r.subject for r in train}, {r.subject for r in val}
    assert train_subjects.isdisjoint(val_subjects)
    assert len(val_subjects) == 1 and len(train) + len(val) == len(folder.records)
    assert split_by_subject(folder, 0.2, seed) == (train, val)
    tiny_train, tiny_val = split_by_subject(folder, 0.01, seed)  # rounds to 0, still one validation subject
    assert len({r.subject for r in tiny_val}) == 1
    assert split_by_subject(folder, 0.0, seed) == (folder.records, [])


def test_split_changes_with_seed(data_root):
    folder = scan_data_folder(data_root)
    chosen = {frozenset(r.subject for r in split_by_subject(folder, 0.4, s)[1]) for s in range(8)}
    assert len(chosen) > 1


def test_items_have_shape_range_and_label(data_root):
    folder = scan_data_folder(data_root)
    dataset = RadiographDomainDataset(folder.records, folder.domains, resolution=16, train=False)
    for index in (0, 12, 29):
        image, label = dataset[index]
        assert image.shape == (1, 16, 16) and image.dtype == torch.float32
        assert folder.domains[label] == folder.records[index].domain
        assert -1.5 < float(image.min()) < float(image.max()) < 1.5
    np.testing.assert_array_equal(dataset[5][0], dataset[5][0])  # validation crops are deterministic
    with pytest.raises(DomainError, match="unknown domain"):
        RadiographDomainDataset(folder.records, ["sim-low"], resolution=16, train=False)


def test_validation_is_the_centre_square(tmp_path):
    pixels = np.zeros((20, 40), np.uint8)
    pixels[:, 10:30] = np.arange(20, dtype=np.uint8)[:, None] * 10  # centre 20x20: a vertical ramp
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(tmp_path / "a_1.png"))
    dataset = RadiographDomainDataset([ImageRecord(tmp_path / "a_1.png", "x", "a")], ["x", "y"], 20, train=False)
    image = dataset[0][0][0].numpy()
    assert np.all(np.diff(image[:, 10]) > 0)  # ramp kept, and no black side band got into the crop
    np.testing.assert_allclose(image[:, 0], image[:, -1])


def test_train_crops_vary_with_seed_and_epoch_and_are_reproducible(data_root):
    folder = scan_data_folder(data_root)

    def item(seed, epoch, index=3):
        dataset = RadiographDomainDataset(folder.records, folder.domains, 16, train=True, seed=seed)
        dataset.set_epoch(epoch)
        return dataset[index][0]

    torch.testing.assert_close(item(5, 0), item(5, 0))
    assert not torch.equal(item(5, 0), item(6, 0))
    assert not torch.equal(item(5, 0), item(5, 1))


def test_loader_with_workers_is_reproducible_and_matches_single_process(data_root):
    folder = scan_data_folder(data_root)
    train, _ = split_by_subject(folder, 0.2, seed=0)

    def epochs(num_workers, seed):
        """Two epochs as the trainer loads them: its sampler, the dataset's epoch set before each."""
        dataset = RadiographDomainDataset(train, folder.domains, 16, train=True, seed=seed)
        images, labels = [], []
        for epoch in range(2):
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=4, sampler=EpochPermutationSampler(len(dataset), seed, epoch),
                                drop_last=True, num_workers=num_workers)
            batches = list(loader)
            images.append(torch.cat([x for x, _ in batches]))
            labels.append(torch.cat([y for _, y in batches]))
        return images, labels

    (first, second), labels = epochs(2, seed=11)
    assert first.shape == (len(train) // 4 * 4, 1, 16, 16) and labels[0].dtype == torch.int64
    assert not torch.equal(first, second)  # a new epoch draws new crops and a new order
    (again_first, again_second), _ = epochs(2, seed=11)
    torch.testing.assert_close(first, again_first)
    torch.testing.assert_close(second, again_second)
    (single_first, _), _ = epochs(0, seed=11)
    torch.testing.assert_close(first, single_first)
