"""Radiograph readers and writers: round trips, DICOM derivation, and every bad input's error."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from MedShiftLib.errors import InputImageError, MedShiftError
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.io.radiograph_files import (
    SUPPORTED_EXTENSIONS,
    count_frames,
    has_supported_extension,
    radiograph_format,
    read_radiograph,
    read_radiograph_frames,
    write_radiograph,
)

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
XA_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"
RNG = np.random.default_rng(7)


def ramp(rows: int = 24, cols: int = 20, dtype=np.uint16, scale: float = 37.0) -> np.ndarray:
    """A non-constant test image."""
    return (np.add.outer(np.arange(rows) * 3, np.arange(cols)) * scale % 4000).astype(dtype)


def make_dicom(path, pixels, *, photometric="MONOCHROME2", slope=None, intercept=None, imager_spacing=(0.2, 0.1),
               pixel_spacing=None, sop_class=CR_STORAGE, window=None, transfer_syntax=ExplicitVRLittleEndian,
               bits_stored=None):
    """Write a small DICOM radiograph (2-D grey, (frames, rows, cols) cine, or (rows, cols, 3) RGB)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P-001"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "XA" if sop_class == XA_STORAGE else "CR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    rgb = pixels.ndim == 3 and pixels.shape[-1] == 3
    frames = pixels.ndim == 3 and not rgb
    ds.Rows, ds.Columns = pixels.shape[1:3] if frames else pixels.shape[:2]
    if frames:
        ds.NumberOfFrames = pixels.shape[0]
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = 66.7
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = "RGB" if rgb else photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if imager_spacing:
        ds.ImagerPixelSpacing = list(imager_spacing)
    if pixel_spacing:
        ds.PixelSpacing = list(pixel_spacing)
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    junk_jpeg = pydicom.encaps.encapsulate([b"\xff\xd8junk\xff\xd9"])
    ds.PixelData = pixels.tobytes() if transfer_syntax != JPEGLossless else junk_jpeg
    ds.save_as(str(path), implicit_vr=transfer_syntax == ImplicitVRLittleEndian, little_endian=True,
               enforce_file_format=True)
    return ds


# ---- format detection --------------------------------------------------------------------------------

def test_format_is_told_from_extension_and_dicom_preamble(tmp_path):
    assert radiograph_format("a/b/scan.NII.GZ") == "nifti"
    assert radiograph_format("x.TIF") == "tiff" and radiograph_format("x.mhd") == "mha"
    assert has_supported_extension("s_v01.png") and not has_supported_extension("notes.txt")
    assert ".nii.gz" in SUPPORTED_EXTENSIONS and ".dcm" in SUPPORTED_EXTENSIONS
    no_extension = tmp_path / "IM0001"
    make_dicom(no_extension, ramp())
    assert radiograph_format(no_extension) == "dicom"
    assert read_radiograph(no_extension).file_format == "dicom"
    with pytest.raises(InputImageError, match=r"photo\.gif.*unsupported"):
        radiograph_format(tmp_path / "photo.gif")


# ---- SimpleITK round trips ---------------------------------------------------------------------------

ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("extension", [".nrrd", ".nhdr", ".mha", ".mhd", ".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32])
def test_volume_formats_round_trip_pixels_and_geometry(tmp_path, extension, dtype):
    pixels = (ramp(dtype=np.float32) - 700).astype(dtype) if dtype != np.uint16 else ramp()
    if dtype == np.float32:
        pixels = pixels + np.float32(0.25)
    image = RadiographImage(pixels, spacing=(0.125, 0.25, 1.0), origin=(3.5, -2.25, 0.0), direction=ROTATED)
    out = write_radiograph(image, tmp_path / f"img{extension}")
    back = read_radiograph(out)
    assert back.pixels.dtype == pixels.dtype
    np.testing.assert_array_equal(back.pixels, pixels)
    # NIfTI stores geometry as float32; these values are exact in float32, so every format keeps them exactly
    assert back.spacing == image.spacing and back.origin == image.origin
    np.testing.assert_allclose(back.direction, ROTATED, atol=1e-7)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left


def test_non_planar_geometry_is_written_as_a_single_slice_volume(tmp_path):
    tilted = tuple(np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float).ravel())
    image = RadiographImage(ramp(), spacing=(0.3, 0.2, 2.0), origin=(1.0, 2.0, 3.0), direction=tilted)
    back = read_radiograph(write_radiograph(image, tmp_path / "tilted.nrrd"))
    assert back.spacing == image.spacing and back.origin == image.origin and back.direction == tilted
    assert back.metadata["dimension"] == 3


@pytest.mark.parametrize("extension", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_tiff_keep_pixels_and_spacing_but_not_origin(tmp_path, extension, dtype):
    pixels = ramp(dtype=np.float64).astype(dtype) if dtype == np.uint16 else (ramp() % 256).astype(np.uint8)
    image = RadiographImage(pixels, spacing=(0.143, 0.0875, 1.0), origin=(5.0, 6.0, 0.0))
    back = read_radiograph(write_radiograph(image, tmp_path / f"img{extension}"))
    assert back.pixels.dtype == dtype
    np.testing.assert_array_equal(back.pixels, pixels)
    np.testing.assert_allclose(back.spacing[:2], (0.143, 0.0875), rtol=0 if extension == ".png" else 1e-7)
    assert back.origin == (0.0, 0.0, 0.0)  # neither format stores an origin


@pytest.mark.parametrize("extension", [".nrrd", ".mha"])
def test_an_unknown_pixel_spacing_stays_unknown_through_nrrd_and_mha(tmp_path, extension):
    from MedShiftLib.pipeline.image_translation import image_spacing_mm

    png = write_radiograph(RadiographImage(ramp(dtype=np.uint16)), tmp_path / "picture.png")
    from_png = read_radiograph(png)
    assert image_spacing_mm(from_png) is None  # a PNG's spacing is no physical size
    again = read_radiograph(write_radiograph(from_png, tmp_path / f"picture{extension}"))
    assert image_spacing_mm(again) is None
    node_frame = RadiographImage(ramp(), spacing=(0.5, 0.5, 1.0), metadata={"spacing_known": False})
    assert image_spacing_mm(read_radiograph(write_radiograph(node_frame, tmp_path / f"frame{extension}"))) is None
    measured = RadiographImage(ramp(), spacing=(0.5, 0.5, 1.0))
    assert image_spacing_mm(read_radiograph(write_radiograph(measured, tmp_path / f"mm{extension}"))) == 0.5


def test_png_stores_whole_float_values_as_16_bit_and_refuses_fractions(tmp_path):
    whole = ramp(dtype=np.float32)
    back = read_radiograph(write_radiograph(RadiographImage(whole), tmp_path / "whole.png"))
    assert back.pixels.dtype == np.uint16
    np.testing.assert_array_equal(back.pixels, whole)
    with pytest.raises(InputImageError, match=r"frac\.png.*0\.\.65535"):
        write_radiograph(RadiographImage(whole + 0.5), tmp_path / "frac.png")
    with pytest.raises(InputImageError, match=r"neg\.tif"):
        write_radiograph(RadiographImage(ramp(dtype=np.int16) - 100), tmp_path / "neg.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whole.png"]  # failed writes leave nothing behind


def test_write_refuses_to_overwrite_the_input_file(tmp_path):
    path = tmp_path / "in.nrrd"
    write_radiograph(RadiographImage(ramp()), path)
    before = path.read_bytes()
    source = read_radiograph(path)
    translated = source.with_pixels(source.pixels // 2)
    with pytest.raises(MedShiftError, match="never overwrites"):
        write_radiograph(translated, path, source=source)
    with pytest.raises(MedShiftError, match="never overwrites"):
        write_radiograph(translated, tmp_path / "." / "in.nrrd")  # the image's own origin, another spelling
    assert path.read_bytes() == before
    with pytest.raises(MedShiftError, match="output format"):
        write_radiograph(translated, tmp_path / "out.xyz")


# ---- DICOM reading -----------------------------------------------------------------------------------

def test_dicom_monochrome1_and_window_are_kept_not_applied(tmp_path):
    pixels = ramp()
    make_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1", window=(1000, 500))
    image = read_radiograph(tmp_path / "m1.dcm")
    assert image.photometric == "MONOCHROME1"
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, pixels)  # no inversion, no windowing
    assert image.metadata["window_center"] == 1000 and image.metadata["window_width"] == 500
    assert image.metadata["dicom_dataset"].PatientID == "P-001"
    assert "PixelData" not in image.metadata["dicom_dataset"]


def test_dicom_rescale_integer_shift_stays_integer_and_slope_gives_float(tmp_path):
    pixels = ramp()
    make_dicom(tmp_path / "shift.dcm", pixels, slope=1, intercept=-1024, bits_stored=12)
    shifted = read_radiograph(tmp_path / "shift.dcm")
    assert shifted.pixels.dtype.kind == "i"
    np.testing.assert_array_equal(shifted.pixels, pixels.astype(np.int64) - 1024)
    make_dicom(tmp_path / "slope.dcm", pixels, slope=0.5, intercept=10)
    sloped = read_radiograph(tmp_path / "slope.dcm")
    assert sloped.pixels.dtype == np.float32
    np.testing.assert_allclose(sloped.pixels, pixels * 0.5 + 10)


def test_dicom_spacing_prefers_imager_pixel_spacing_then_pixel_spacing(tmp_path):
    make_dicom(tmp_path / "both.dcm", ramp(), imager_spacing=(0.2, 0.1), pixel_spacing=(0.18, 0.09))
    both = read_radiograph(tmp_path / "both.dcm")
    assert both.spacing == (0.1, 0.2, 1.0) and both.metadata["spacing_source"] == "ImagerPixelSpacing"
    make_dicom(tmp_path / "ps.dcm", ramp(), imager_spacing=None, pixel_spacing=(0.18, 0.09))
    only = read_radiograph(tmp_path / "ps.dcm")
    assert only.spacing == (0.09, 0.18, 1.0) and only.metadata["spacing_source"] == "PixelSpacing"


def test_multi_frame_dicom_reads_the_chosen_frame(tmp_path):
    cine = np.stack([ramp() + 100 * k for k in range(4)]).astype(np.uint16)
    path = tmp_path / "cine.dcm"
    make_dicom(path, cine, sop_class=XA_STORAGE)
    assert count_frames(path) == 4
    np.testing.assert_array_equal(read_radiograph(path, frame=2).pixels, cine[2])
    frames = read_radiograph_frames(path)
    assert len(frames) == 4 and [f.metadata["frame"] for f in frames] == [0, 1, 2, 3]
    np.testing.assert_array_equal(frames[3].pixels, cine[3])
    with pytest.raises(InputImageError, match=r"cine\.dcm.*4 frames.*pick a frame"):
        read_radiograph(path)
    with pytest.raises(InputImageError, match=r"cine\.dcm.*frame 9 does not exist"):
        read_radiograph(path, frame=9)


def test_volume_file_needs_a_frame_and_gives_slices(tmp_path):
    volume = np.stack([ramp(dtype=np.int16) + 5 * k for k in range(3)])
    itk = sitk.GetImageFromArray(volume)
    itk.SetSpacing((0.5, 0.5, 2.0))
    itk.SetOrigin((0.0, 0.0, 10.0))
    sitk.WriteImage(itk, str(tmp_path / "ct.nrrd"))
    with pytest.raises(InputImageError, match=r"ct\.nrrd.*3 frames.*projection"):
        read_radiograph(tmp_path / "ct.nrrd")
    second = read_radiograph(tmp_path / "ct.nrrd", frame=1)
    np.testing.assert_array_equal(second.pixels, volume[1])
    assert second.origin == (0.0, 0.0, 12.0)
    assert count_frames(tmp_path / "ct.nrrd") == 3


# ---- DICOM writing -----------------------------------------------------------------------------------

def test_derived_dicom_text_fits_its_value_representations_and_the_series_is_new(tmp_path):
    import warnings
    source_ds = make_dicom(tmp_path / "cr.dcm", ramp().astype(np.uint16))
    source_ds.SeriesNumber = 7
    source_ds.save_as(tmp_path / "cr.dcm", enforce_file_format=True)
    source = read_radiograph(tmp_path / "cr.dcm")
    long_text = "MedShift clinical-normal->clinical-exposure tau0.6 w2 contrast matched-noise seed12 euler 8 quadratic"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom warns about values longer than their VR allows
        out = write_radiograph(source, tmp_path / "out" / "d.dcm", source=source, series_description=long_text)
        ds = pydicom.dcmread(str(out))
        ds.SeriesDescription  # noqa: B018  (read back: no warning either)
    assert len(ds.SeriesDescription) <= 64 and ds.SeriesDescription.startswith("MedShift clinical-normal")
    assert long_text in ds.DerivationDescription
    assert int(ds.SeriesNumber) == 1007 != int(source_ds.SeriesNumber)



def test_derived_dicom_keeps_identity_and_has_new_uids(tmp_path):
    cine = np.stack([ramp() + 100 * k for k in range(3)]).astype(np.uint16)
    source_ds = make_dicom(tmp_path / "cine.dcm", cine, sop_class=XA_STORAGE, photometric="MONOCHROME1",
                           window=(900, 800))
    source = read_radiograph(tmp_path / "cine.dcm", frame=1)
    translated = source.with_pixels((source.pixels // 2 + 7).astype(np.uint16))
    out = write_radiograph(translated, tmp_path / "out" / "derived.dcm", source=source,
                           series_description="MedShift sim-low to clinical")
    ds = pydicom.dcmread(str(out))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPInstanceUID != source_ds.SOPInstanceUID and ds.SeriesInstanceUID != source_ds.SeriesInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (ds.PatientName, ds.PatientID, ds.StudyInstanceUID) == ("Doe^Jane", "P-001", source_ds.StudyInstanceUID)
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"] and ds.ImageType[2] == "SINGLE PLANE"
    assert ds.SeriesDescription == "MedShift sim-low to clinical"
    assert source_ds.SOPInstanceUID in ds.DerivationDescription and "frame 2" in ds.DerivationDescription
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source_ds.SOPInstanceUID
    assert "NumberOfFrames" not in ds and ds.SOPClassUID == XA_STORAGE
    assert ds.PhotometricInterpretation == "MONOCHROME1" and float(ds.WindowCenter) == 900
    back = read_radiograph(out)
    np.testing.assert_array_equal(back.pixels, translated.pixels)
    assert back.spacing == source.spacing


def test_derived_dicom_keeps_the_source_rescale_and_stores_floats_through_one(tmp_path):
    make_dicom(tmp_path / "ct_like.dcm", ramp(), slope=1, intercept=-1024, bits_stored=12,
               transfer_syntax=ImplicitVRLittleEndian)
    source = read_radiograph(tmp_path / "ct_like.dcm")
    shifted = source.with_pixels(source.pixels + 3)  # still inside the 12-bit stored range
    ds = pydicom.dcmread(str(write_radiograph(shifted, tmp_path / "shifted.dcm", source=source)))
    assert float(ds.RescaleIntercept) == -1024 and ds.BitsStored == 12
    np.testing.assert_array_equal(read_radiograph(tmp_path / "shifted.dcm").pixels, shifted.pixels)
    smooth = source.with_pixels(source.pixels.astype(np.float32) * 0.37 + 0.1)
    out = write_radiograph(smooth, tmp_path / "smooth.dcm", source=source)
    back = read_radiograph(out)
    step = float(pydicom.dcmread(str(out)).RescaleSlope)
    assert back.pixels.dtype == np.float32
    assert np.max(np.abs(back.pixels - smooth.pixels)) <= step  # quantised to 16 bits, not clipped


def test_dicom_without_source_is_a_valid_secondary_capture(tmp_path):
    image = RadiographImage(ramp(23, 17, dtype=np.uint8), spacing=(0.3, 0.4, 1.0))  # odd byte count
    out = write_radiograph(image, tmp_path / "sc.dcm", series_description="Tëst")
    ds = pydicom.dcmread(str(out))
    assert ds.SOPClassUID == SecondaryCaptureImageStorage and ds.BitsAllocated == 8
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.SeriesDescription == "Tëst"
    back = read_radiograph(out)
    np.testing.assert_array_equal(back.pixels, image.pixels)
    np.testing.assert_allclose(back.spacing, image.spacing)


# ---- bad inputs -------------------------------------------------------------------------------------

def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputImageError, match=r"nothere\.dcm.*no such file"):
        read_radiograph(tmp_path / "nothere.dcm")
    with pytest.raises(InputImageError, match="folder"):
        read_radiograph(tmp_path)


@pytest.mark.parametrize("name", ["cut.dcm", "cut.png", "cut.nrrd"])
def test_truncated_files(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".dcm"):
        make_dicom(path, ramp(64, 64))
    else:
        sitk.WriteImage(sitk.GetImageFromArray(ramp(64, 64)), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputImageError, match=rf"{name.replace('.', '[.]')}.*(truncated|damaged|decode)"):
        read_radiograph(path)


def test_dicom_without_pixel_data(tmp_path):
    ds = make_dicom(tmp_path / "x.dcm", ramp())
    del ds.PixelData
    ds.save_as(str(tmp_path / "nopix.dcm"), enforce_file_format=True)
    with pytest.raises(InputImageError, match=r"nopix\.dcm.*no pixel data"):
        read_radiograph(tmp_path / "nopix.dcm")


def test_compressed_dicom_without_decoder_names_packages(tmp_path):
    if pydicom.pixels.get_decoder(JPEGLossless).is_available:
        pytest.skip("a JPEG Lossless decoder is installed here")
    make_dicom(tmp_path / "jpeg.dcm", ramp(), transfer_syntax=JPEGLossless)
    with pytest.raises(InputImageError, match=r"jpeg\.dcm.*JPEG Lossless.*(pylibjpeg|python-gdcm)"):
        read_radiograph(tmp_path / "jpeg.dcm")


def test_nan_and_constant_images_are_refused(tmp_path):
    nan = ramp(dtype=np.float32)
    nan[3, 4] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(nan), str(tmp_path / "nan.mha"))
    with pytest.raises(InputImageError, match=r"nan\.mha.*NaN"):
        read_radiograph(tmp_path / "nan.mha")
    sitk.WriteImage(sitk.GetImageFromArray(np.full((8, 8), 9, np.uint8)), str(tmp_path / "flat.png"))
    with pytest.raises(InputImageError, match=r"flat\.png.*constant"):
        read_radiograph(tmp_path / "flat.png")


def test_rgb_png_and_dicom_become_grey_with_a_warning(tmp_path):
    rgb = RNG.integers(0, 256, size=(10, 12, 3)).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "colour.png"))
    make_dicom(tmp_path / "colour.dcm", rgb)
    expected = np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    for name in ("colour.png", "colour.dcm"):
        with pytest.warns(UserWarning, match=rf"{name.replace('.', '[.]')}.*BT\.601"):
            image = read_radiograph(tmp_path / name)
        assert image.metadata["converted_from_rgb"] is True and image.pixels.dtype == np.uint8
        np.testing.assert_array_equal(image.pixels, expected)


def test_grey_reads_do_not_warn(tmp_path):
    make_dicom(tmp_path / "g.dcm", ramp())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_radiograph(tmp_path / "g.dcm")
    assert os.listdir(tmp_path) == ["g.dcm"]
