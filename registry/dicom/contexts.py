"""What the receiver accepts: the storage SOP classes a head-CT study meets, in the common transfer syntaxes.

Non-CT objects (dose reports, secondary captures, presentation states, MR...) are accepted on the wire
so that the registry's per-file judgement records why each one is not ingested, instead of the sender
seeing an opaque negotiation failure. The compressed syntaxes are those pylibjpeg and pyjpegls decode.
"""

from __future__ import annotations

from pydicom import uid
from pynetdicom import sop_class

STORAGE_SOP_CLASSES = (
    sop_class.CTImageStorage,
    sop_class.EnhancedCTImageStorage,
    sop_class.LegacyConvertedEnhancedCTImageStorage,
    sop_class.MRImageStorage,
    sop_class.EnhancedMRImageStorage,
    sop_class.SecondaryCaptureImageStorage,
    sop_class.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    sop_class.XRayRadiationDoseSRStorage,
    sop_class.EnhancedSRStorage,
    sop_class.ComprehensiveSRStorage,
    sop_class.GrayscaleSoftcopyPresentationStateStorage,
    sop_class.KeyObjectSelectionDocumentStorage,
    sop_class.SegmentationStorage,
    sop_class.RawDataStorage,
    sop_class.EncapsulatedPDFStorage,
)

TRANSFER_SYNTAXES = (
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLosslessSV1,
    uid.JPEGLossless,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.RLELossless,
)
