"""Training and DICOM SEG in the four-class label map (small and fast)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
from imaging_dicom_factory import write_ct_series

from imaging.dicom_seg import segmentation_dataset
from imaging.inference import UNetSegmenter
from imaging.model import LABEL_MAP, output_lut
from imaging.preprocess import Preprocessing
from imaging.train import TrainingConfig, TrainingExample, _crop_centres, train_model
from synthetic import phantom as P
from vocabulary.labels import EAH, EDEMA, IPH, IVH, LESION_CLASSES

TINY = TrainingConfig(epochs=2, steps_per_epoch=3, batch_size=4, patch=32, seed=3,
                      net={"channels": [4, 8], "strides": [2], "num_res_units": 0})


def test_training_on_all_four_classes_gives_one_output_per_class_and_validates_each() -> None:
    examples = []
    for i in range(3):
        spec = P.SeriesSpec(hematomas=(P.hematoma(10 + 5 * i, "left", shape_seed=i),),
                            extra_axial=P.ExtraAxial("right", 15.0), intraventricular=P.Intraventricular(2.0))
        r = P.render_series(spec, P.Grid.centered(48, 230, 5), np.random.default_rng(i))
        assert {IPH, EAH, EDEMA, IVH} <= set(np.unique(r.labels).tolist())
        examples.append(TrainingExample(f"1.2.{i}", f"p{i}", r.hu, r.labels))
    model = train_model(examples, TINY, Preprocessing(size=32))
    assert model.label_map == LABEL_MAP and len(LABEL_MAP) == 5
    assert model.net(torch.rand(2, 1, 32, 32)).shape == (2, 5, 32, 32)
    assert set(model.metadata["metrics"]["val_dice"]) == {"iph", "eah", "edema", "ivh"}


def test_patches_centre_on_the_chosen_class() -> None:
    y = torch.zeros(3, 64, 64, dtype=torch.long)
    y[:, 5:8, 50:53] = IVH  # a small IVH in the corner
    y[:, 30:40, 10:20] = IPH
    rng = np.random.default_rng(0)
    for (cy, cx) in _crop_centres(y, [IVH, IVH, IVH], 16, rng):
        # The 16-pixel patch around the centre holds the IVH voxels (centre jitter is at most a quarter patch).
        assert (y[0, cy - 8:cy + 8, cx - 8:cx + 8] == IVH).any()


def test_two_class_checkpoints_map_into_the_label_map() -> None:
    lut = output_lut({0: "background", 1: "hematoma", 2: "edema"})
    assert lut.tolist() == [0, IPH, EDEMA]
    assert output_lut(LABEL_MAP).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="not in the label map"):
        output_lut({0: "background", 1: "tumour"})


def test_segmenter_of_a_two_class_checkpoint_writes_four_class_labels() -> None:
    """An older checkpoint's edema output (2) comes out as edema (3), not as extra-axial blood."""
    from imaging.model import SegmentationModel, build_unet

    pre = Preprocessing(size=32)
    net = build_unet(1, 3, {"channels": [4, 8], "strides": [2], "num_res_units": 0})
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.model[-1].conv.bias[:] = torch.tensor([0.0, 0.0, 5.0])  # every pixel "edema"
    model = SegmentationModel(net=net.eval(), preprocessing=pre, net_config={},
                              label_map={0: "background", 1: "hematoma", 2: "edema"}, version="legacy")
    r = P.single_hematoma_series(10, matrix=48, seed=1)
    from imaging.volume import Volume

    z = r.hu.shape[0]
    vol = Volume(hu=r.hu, spacing=r.spacing, affine=r.affine,
                 positions=np.array([r.affine @ [0, 0, k, 1] for k in range(z)])[:, :3],
                 sop_instance_uids=tuple(str(k) for k in range(z)))
    labels, _ = UNetSegmenter(model, torch.device("cpu"), optimize=False).segment(vol)
    assert set(np.unique(labels).tolist()) <= {0, EDEMA} and (labels == EDEMA).any()


def test_dicom_seg_has_one_coded_segment_per_class_present(tmp_path) -> None:
    hu = np.full((3, 16, 16), 30.0, np.float32)
    paths = write_ct_series(tmp_path / "ct", hu, spacing=(5.0, 0.9, 0.9))
    dss = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: float(d.ImagePositionPatient[2]))
    labels = np.zeros(hu.shape, np.uint8)
    labels[0, :3, :] = EAH
    labels[2, 8:12, 8:12] = IVH  # no IPH, no edema: two segments, not four
    seg = segmentation_dataset(paths, labels, [str(d.SOPInstanceUID) for d in dss], "unet2d", "ab" * 32)
    out = tmp_path / "seg.dcm"
    seg.save_as(out)
    back = hd.seg.segread(out)
    assert back.number_of_segments == 2
    for number, c in ((1, LESION_CLASSES[1]), (2, LESION_CLASSES[3])):
        desc = back.get_segment_description(number)
        assert (desc.segment_label, desc.tracking_id) == (c.name, c.key)
        assert (desc.segmented_property_type.value, desc.segmented_property_type.meaning) == (c.snomed_code,
                                                                                            c.snomed_meaning)
        assert desc.segmented_property_category.value == "49755003"
        assert list(desc.RecommendedDisplayCIELabValue) == list(hd.color.CIELabColor.from_string(c.colour).value)
    pixels = back.get_pixels_by_source_instance(source_sop_instance_uids=[str(d.SOPInstanceUID) for d in dss],
                                                segment_numbers=[1, 2])
    assert np.array_equal(pixels[..., 0], labels == EAH) and np.array_equal(pixels[..., 1], labels == IVH)
    with pytest.raises(ValueError, match="nothing to export"):
        segmentation_dataset(paths, labels * 0, [str(d.SOPInstanceUID) for d in dss], "unet2d", "ab" * 32)


def test_warm_start_from_a_two_class_model_starts_as_that_model_and_fine_tunes() -> None:
    """Fine-tuning the two-class U-Net: its classes keep their outputs, the new ones start below IPH."""
    from imaging.model import SegmentationModel, build_unet
    from imaging.train import NEW_CLASS_BIAS, warm_start_state

    cfg = {"channels": [4, 8], "strides": [2], "num_res_units": 1}
    torch.manual_seed(0)
    old_net = build_unet(1, 3, cfg).eval()
    old = SegmentationModel(net=old_net, preprocessing=Preprocessing(size=32), net_config=cfg,
                            label_map={0: "background", 1: "hematoma", 2: "edema"}, version="v-old")
    net = build_unet(1, 5, cfg)
    net.load_state_dict(warm_start_state(old, net))
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        a, b = old_net(x), net.eval()(x)
    assert torch.allclose(b[:, [0, IPH, EDEMA]], a, atol=1e-5)
    assert torch.allclose(b[:, EAH], a[:, 1] + NEW_CLASS_BIAS, atol=1e-5)
    assert torch.allclose(b[:, IVH], a[:, 1] + NEW_CLASS_BIAS, atol=1e-5)

    examples = []
    for i in range(3):
        spec = P.SeriesSpec(hematomas=(P.hematoma(12, "right", shape_seed=i),),
                            intraventricular=P.Intraventricular(2.0))
        r = P.render_series(spec, P.Grid.centered(48, 230, 5), np.random.default_rng(i))
        examples.append(TrainingExample(f"1.3.{i}", f"q{i}", r.hu, r.labels))
    tiny = TrainingConfig(epochs=1, steps_per_epoch=2, batch_size=4, patch=32, seed=3, net=cfg)
    tuned = train_model(examples, tiny, Preprocessing(size=32), initial=old)
    assert tuned.metadata["initial_model"]["version"] == "v-old" and tuned.label_map == LABEL_MAP
    with pytest.raises(ValueError, match="other preprocessing"):
        train_model(examples, tiny, Preprocessing(size=32, context_slices=1), initial=old)
