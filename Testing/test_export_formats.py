"""The formats radiographs are exported in: JPEG and BMP in, TIFF resolution tags as pixel spacing, NumPy arrays,
folders of DICOM files without an extension, and JPEG-compressed DICOM without a decoder.

Every picture here is a real file written by Pillow or pydicom, read back through MedShift.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_radiograph_io import make_dicom, ramp

from MedShiftLib.errors import DataFolderError, InputImageError, MedShiftError
from MedShiftLib.io.data_folder import scan_data_folder
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.io.radiograph_files import count_frames, read_radiograph, read_radiograph_frames, write_radiograph
from MedShiftLib.pipeline.file_translation import collect_inputs
from MedShiftLib.pipeline.image_translation import image_spacing_mm
from MedShiftLib.pipeline.output_plan import check_output_holds, format_change_note, plan_outputs

ROOT = Path(__file__).resolve().parents[1]


def grey8(rows: int = 48, cols: int = 64) -> np.ndarray:
    """A smooth 8-bit picture (JPEG keeps it close)."""
    yy, xx = np.mgrid[:rows, :cols]
    return (40 + 150 * np.exp(-((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2) / (2 * (rows / 4) ** 2))).astype(np.uint8)


# ---- JPEG and BMP in ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["film.jpg", "film.JPEG", "film.bmp"])
def test_grey_jpeg_and_bmp_are_read_as_8_bit_with_unknown_spacing(tmp_path, name):
    Image.fromarray(grey8()).save(tmp_path / name, dpi=(300, 300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a grey picture is read without a warning
        image = read_radiograph(tmp_path / name)
    assert image.pixels.dtype == np.uint8 and image.shape == (48, 64)
    np.testing.assert_array_equal(image.pixels, np.asarray(Image.open(tmp_path / name)))
    assert np.abs(image.pixels.astype(int) - grey8()).max() <= (0 if name.endswith("bmp") else 6)
    assert image.file_format == ("bmp" if name.endswith("bmp") else "jpeg")
    assert image_spacing_mm(image) is None  # a JPEG/BMP density is screen dpi, not a detector pitch
    assert count_frames(tmp_path / name) == 1


@pytest.mark.parametrize("name", ["colour.jpg", "colour.bmp"])
def test_colour_jpeg_and_bmp_become_grey_with_a_warning(tmp_path, name):
    rgb = np.stack([grey8(), grey8() // 2, 255 - grey8()], axis=-1)
    Image.fromarray(rgb).save(tmp_path / name)
    with pytest.warns(UserWarning, match=rf"{name.replace('.', '[.]')}.*BT\.601"):
        image = read_radiograph(tmp_path / name)
    stored = np.asarray(Image.open(tmp_path / name)).astype(float)
    np.testing.assert_array_equal(image.pixels, np.rint(stored @ [0.299, 0.587, 0.114]).astype(np.uint8))
    assert image.metadata["converted_from_rgb"] is True


def test_a_damaged_jpeg_is_refused_in_one_line(tmp_path):
    Image.fromarray(grey8()).save(tmp_path / "cut.jpg")
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:40])
    with pytest.raises(InputImageError, match=r"cut\.jpg: cannot read this JPEG file") as caught:
        read_radiograph(tmp_path / "cut.jpg")
    assert "\n" not in str(caught.value)


# ---- TIFF resolution tags ------------------------------------------------------------------------------

@pytest.mark.parametrize("tags, spacing", [
    ({"dpi": (254, 127)}, (0.1, 0.2)),                                              # inch
    ({"resolution_unit": 3, "x_resolution": 70.0, "y_resolution": 70.0}, (1 / 7, 1 / 7)),  # centimetre
])
def test_physical_tiff_resolution_is_the_pixel_spacing(tmp_path, tags, spacing):
    pixels = ramp(40, 50)
    Image.fromarray(pixels).save(tmp_path / "scan.tif", **tags)
    image = read_radiograph(tmp_path / "scan.tif")
    np.testing.assert_array_equal(image.pixels, pixels)
    np.testing.assert_allclose(image.spacing[:2], spacing, rtol=1e-6)
    assert image.metadata["spacing_known"] is True and image.metadata["spacing_source"] == "TIFF resolution"
    assert image_spacing_mm(image) == pytest.approx(np.mean(spacing))


@pytest.mark.parametrize("tags", [{}, {"dpi": (72, 72)}, {"dpi": (96, 96)}, {"dpi": (25.4, 25.4)},
                                  {"resolution_unit": 1, "x_resolution": 200.0, "y_resolution": 200.0}])
def test_screen_default_placeholder_or_unitless_tiff_resolution_leaves_the_spacing_unknown(tmp_path, tags):
    Image.fromarray(ramp(40, 50)).save(tmp_path / "screenshot.tif", **tags)
    image = read_radiograph(tmp_path / "screenshot.tif")
    assert image.metadata["spacing_known"] is False and image_spacing_mm(image) is None


def test_a_tiff_written_by_medshift_keeps_a_known_spacing_and_writes_no_unknown_one(tmp_path):
    known = read_radiograph(write_radiograph(RadiographImage(ramp(), spacing=(0.143, 0.0875, 1.0)), tmp_path / "k.tif"))
    np.testing.assert_allclose(known.spacing[:2], (0.143, 0.0875), rtol=1e-9)
    assert image_spacing_mm(known) == pytest.approx((0.143 + 0.0875) / 2)
    from_png = read_radiograph(write_radiograph(RadiographImage(ramp()), tmp_path / "p.png"))
    assert image_spacing_mm(read_radiograph(write_radiograph(from_png, tmp_path / "u.tif"))) is None
    assert 282 not in Image.open(tmp_path / "u.tif").tag_v2  # no XResolution claiming a size


def test_every_page_of_a_multi_page_tiff_is_a_frame(tmp_path):
    pages = [Image.fromarray(ramp(20, 30) + k) for k in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:], dpi=(254, 254))
    assert count_frames(tmp_path / "stack.tif") == 3
    frames = read_radiograph_frames(tmp_path / "stack.tif")
    assert [int(f.pixels[0, 0]) for f in frames] == [int(ramp(20, 30)[0, 0]) + k for k in range(3)]
    assert read_radiograph(tmp_path / "stack.tif", frame=2).pixels[0, 0] == ramp(20, 30)[0, 0] + 2
    with pytest.raises(InputImageError, match="3 frames"):
        read_radiograph(tmp_path / "stack.tif")


# ---- writing: BMP kept, JPEG never ---------------------------------------------------------------------

def test_bmp_output_keeps_8_bit_pixels_and_refuses_16_bit(tmp_path):
    back = read_radiograph(write_radiograph(RadiographImage(grey8()), tmp_path / "out.bmp"))
    np.testing.assert_array_equal(back.pixels, grey8())
    with pytest.raises(InputImageError, match=r"deep\.bmp: BMP holds only 8-bit"):
        write_radiograph(RadiographImage(ramp()), tmp_path / "deep.bmp")
    with pytest.raises(InputImageError, match="BMP holds only 8-bit"):
        check_output_holds(RadiographImage(ramp()), tmp_path / "deep.bmp")
    assert sorted(os.listdir(tmp_path)) == ["out.bmp"]


def test_jpeg_is_never_written_a_jpeg_input_is_planned_as_png_with_a_note(tmp_path):
    with pytest.raises(MedShiftError, match=r"out\.jpg: JPEG is lossy.*\.png"):
        write_radiograph(RadiographImage(grey8()), tmp_path / "out.jpg")
    assert not (tmp_path / "out.jpg").exists()
    Image.fromarray(grey8()).save(tmp_path / "film.jpg")
    Image.fromarray(grey8()).save(tmp_path / "film2.bmp")
    plans = plan_outputs([tmp_path / "film.jpg", tmp_path / "film2.bmp"], tmp_path / "out")
    assert [p.output.name for p in plans] == ["film.png", "film2.bmp"]
    assert format_change_note(plans).startswith("film.jpg: JPEG is lossy, so the translation is written as PNG")
    assert format_change_note(plan_outputs([tmp_path / "film.jpg"], tmp_path / "out", output_format="tiff")) is None


def test_translate_turns_a_jpeg_into_a_png_and_says_so(tmp_path, capsys):
    from MedShiftLib.cli import main

    Image.fromarray(grey8(64, 64)).save(tmp_path / "film.jpg")
    code = main(["translate", str(tmp_path / "film.jpg"), "--out", str(tmp_path / "out"), "--source",
                 "clinical-normal", "--target", "clinical-low"])
    assert code == 0
    assert "warning: film.jpg: JPEG is lossy, so the translation is written as PNG" in capsys.readouterr().err
    assert os.listdir(tmp_path / "out") == ["film.png"]
    out = read_radiograph(tmp_path / "out" / "film.png")
    assert out.pixels.dtype == np.uint8 and out.shape == (64, 64)
    code = main(["translate", str(tmp_path / "film.jpg"), "--out", str(tmp_path / "chosen"), "--format", "png",
                 "--source", "clinical-normal", "--target", "clinical-low"])
    assert code == 0 and "JPEG is lossy" not in capsys.readouterr().err  # the user chose the format: no note


def test_a_write_cut_short_by_the_file_size_limit_fails_and_leaves_nothing(tmp_path):
    code = """
import resource, sys
import numpy as np
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.io.radiograph_files import write_radiograph
noise = np.random.default_rng(0).integers(0, 65535, (256, 256)).astype(np.uint16)
resource.setrlimit(resource.RLIMIT_FSIZE, (24 * 1024, resource.RLIM_INFINITY))
for name in ("big.png", "big.tif", "big.bmp", "big.npy"):
    pixels = (noise // 256).astype(np.uint8) if name.endswith("bmp") else noise
    try:
        write_radiograph(RadiographImage(pixels), name)
        print(name, "written")
    except OSError as exc:
        print(name, exc.errno)
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "MedShift")})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["big.png", "27", "big.tif", "27", "big.bmp", "27", "big.npy", "27"]  # EFBIG
    assert os.listdir(tmp_path) == []


# ---- NumPy arrays ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.float64])
def test_npy_keeps_dtype_and_values_and_has_unknown_spacing(tmp_path, dtype):
    pixels = (ramp(24, 40).astype(np.float64) * 0.5 - 10).astype(dtype)
    path = write_radiograph(RadiographImage(pixels, spacing=(0.2, 0.2, 1.0)), tmp_path / "a.npy")
    back = read_radiograph(path)
    assert back.pixels.dtype == dtype and back.file_format == "npy"
    np.testing.assert_array_equal(back.pixels, pixels)
    assert image_spacing_mm(back) is None


def test_npy_stacks_are_frames_and_object_arrays_are_refused(tmp_path):
    np.save(tmp_path / "cine.npy", np.stack([ramp(16, 16) + k for k in range(4)]))
    assert count_frames(tmp_path / "cine.npy") == 4
    assert read_radiograph(tmp_path / "cine.npy", frame=3).pixels[0, 0] == ramp(16, 16)[0, 0] + 3
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputImageError, match=r"objects\.npy: cannot read"):
        read_radiograph(tmp_path / "objects.npy")
    np.save(tmp_path / "line.npy", np.arange(10))
    with pytest.raises(InputImageError, match=r"line\.npy: holds an array of shape \(10,\)"):
        read_radiograph(tmp_path / "line.npy")


# ---- DICOM files without an extension --------------------------------------------------------------------

def test_a_folder_of_extension_less_dicom_files_is_expanded_by_the_preamble(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    for name in ("IM000001", "IM000002"):
        make_dicom(export / name, ramp())
    make_dicom(export / "DICOMDIR", ramp())  # the export's index: never an input
    (export / "README").write_text("exported by a PACS viewer\n" * 20)
    assert [p.name for p in collect_inputs([export])] == ["IM000001", "IM000002"]
    plans = plan_outputs(collect_inputs([export]), tmp_path / "out")
    assert [p.output.name for p in plans] == ["IM000001.dcm", "IM000002.dcm"]
    (export / "IM000001").unlink()
    (export / "IM000002").unlink()
    with pytest.raises(InputImageError, match="holds no supported image.*DICOM files without an extension"):
        collect_inputs([export])


def test_a_training_domain_folder_of_extension_less_dicom_files_is_scanned(tmp_path):
    for domain in ("clinical-low", "clinical-normal"):
        (tmp_path / domain).mkdir()
        for k in range(2):
            make_dicom(tmp_path / domain / f"p{k}_IM{k:06d}", ramp())
        (tmp_path / domain / "notes").write_text("not an image")
    folder = scan_data_folder(tmp_path)
    assert folder.count_by_domain() == {"clinical-low": 2, "clinical-normal": 2}
    assert read_radiograph(folder.records[0].path).file_format == "dicom"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes").write_text("not an image")
    with pytest.raises(DataFolderError, match="holds no images"):
        scan_data_folder(tmp_path)


# ---- JPEG-compressed DICOM without a decoder -------------------------------------------------------------

DECODERS = ("pylibjpeg", "libjpeg", "openjpeg", "gdcm", "pyjpegls")


def _read_without_decoders(path: Path) -> str:
    """The InputImageError of read_radiograph(path) in an interpreter where only Pillow decodes JPEG."""
    code = (f"import sys\nfor n in {DECODERS!r}:\n    sys.modules[n] = None\n"
            "from MedShiftLib.errors import InputImageError\n"
            "from MedShiftLib.io.radiograph_files import read_radiograph\n"
            f"try:\n    read_radiograph({str(path)!r})\nexcept InputImageError as exc:\n    print(exc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "MedShift")})
    assert run.returncode == 0 and run.stderr == "", run.stderr
    return run.stdout


def test_a_12_bit_jpeg_dicom_without_a_decoder_names_the_packages_in_one_line(tmp_path):
    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("JPGExtended.dcm"))  # pydicom's own 12-bit JPEG Extended CT slice
    (tmp_path / "IM0001").write_bytes(source.read_bytes())  # extension-less, as exported
    message = _read_without_decoders(tmp_path / "IM0001")
    assert len(message.splitlines()) == 1 and "Unable to decode" not in message
    assert "IM0001: pixel data compressed as JPEG Extended (Process 2 and 4) (12-bit) cannot be decoded by the " \
           "installed decoders (pillow: Pillow does not support 'JPEG Extended' for samples with 12-bit" in message
    assert message.rstrip().endswith("install one of: pip install pylibjpeg pylibjpeg-libjpeg; pip install python-gdcm")


def test_a_jpeg_lossless_dicom_made_with_pydicom_without_a_decoder_names_the_packages(tmp_path):
    from pydicom.uid import JPEGLossless

    make_dicom(tmp_path / "lossless.dcm", ramp(), transfer_syntax=JPEGLossless)
    message = _read_without_decoders(tmp_path / "lossless.dcm")
    assert len(message.splitlines()) == 1 and "lossless.dcm: pixel data is compressed as JPEG Lossless" in message
    assert message.rstrip().endswith("no decoder for it is installed; install one of: pip install pylibjpeg "
                                     "pylibjpeg-libjpeg; pip install python-gdcm")
