"""four-class label map: ManualAnnotation.label_scheme, and the stored two-class masks converted.

Every annotation imported before this revision was drawn in the two-class map (1 hematoma,
2 edema). Upgrade marks them `two-class` and writes a four-class copy of each stored mask
(1 -> IPH 1, 2 -> edema 3, vocabulary.labels.LEGACY_TWO_CLASS) beside it, `<name>-two-class.nii.gz`,
which the row then points to; the original file stays. Downgrade points the rows back to the
originals and drops the column (masks imported four-class keep their labels 2-4, which the older
code rejects: re-import them after upgrading again).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import op

from vocabulary import labels as L

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_SUFFIX = "-two-class.nii.gz"


def _converted_path(path: Path) -> Path:
    name = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    return path.with_name(name + _SUFFIX)


def _convert(src: Path, dst: Path) -> None:
    # Imported here: every command's schema check loads this module, and nibabel costs a second at start-up.
    import nibabel as nib

    img = nib.load(src)
    data = L.from_legacy_two_class(np.asarray(img.dataobj).astype(np.uint8))
    out = nib.Nifti1Image(data, img.affine, header=img.header)
    out.set_data_dtype(np.uint8)
    out.header["descrip"] = L.NIFTI_DESCRIPTION
    out.header.set_intent("label", name=L.NIFTI_INTENT_NAME)
    tmp = dst.with_name(dst.name + ".part.nii.gz")
    nib.save(out, tmp)
    tmp.replace(dst)


def upgrade() -> None:
    conn = op.get_bind()
    existing = conn.execute(sa.text("SELECT id, mask_path FROM manual_annotation")).all()
    with op.batch_alter_table('manual_annotation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label_scheme', sa.String(length=16), nullable=False,
                                      server_default='four-class'))
    for ann_id, mask_path in existing:
        src = Path(mask_path)
        new_path = mask_path
        if src.exists():
            dst = _converted_path(src)
            try:
                _convert(src, dst)
            except ValueError as exc:  # values other than 0-2: leave that mask as it is, say which
                print(f"manual annotation {ann_id}: {src} kept unconverted ({exc})")
            else:
                new_path = str(dst)
        conn.execute(sa.text("UPDATE manual_annotation SET label_scheme = 'two-class', mask_path = :p WHERE id = :i"),
                     {"p": new_path, "i": ann_id})


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, mask_path FROM manual_annotation WHERE label_scheme = 'two-class'")).all()
    for ann_id, mask_path in rows:
        if mask_path.endswith(_SUFFIX):
            original = mask_path[: -len(_SUFFIX)] + ".nii.gz"
            if Path(original).exists():
                conn.execute(sa.text("UPDATE manual_annotation SET mask_path = :p WHERE id = :i"),
                             {"p": original, "i": ann_id})
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 and PostgreSQL): a batch rebuild of
    # manual_annotation is refused by the foreign keys pointing at it as soon as they have rows.
    op.drop_column('manual_annotation', 'label_scheme')
