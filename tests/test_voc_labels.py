"""Pascal VOC crater boxes (the CTX MC11-E labels) read into PixelCraters."""

from __future__ import annotations

import pytest

from marscraters.chips import read_voc_labels
from marscraters.errors import CatalogFormatError

_XML = """<?xml version="1.0" ?>
<annotation><size><width>200</width><height>100</height><depth>1</depth></size>
<object><name>crater</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>19</xmax><ymax>31</ymax></bndbox>
<confidence>4</confidence></object>
<object><name>crater</name><bndbox><xmin>100</xmin><ymin>50</ymin><xmax>100</xmax><ymax>50</ymax></bndbox></object>
</annotation>"""


def test_boxes_become_circles_in_index_coordinates(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(_XML)
    out = read_voc_labels(path)
    # corners are inclusive pixel indices: 10..19 spans 10 px centred on 14.5
    assert out.iloc[0][["x", "y", "width_px", "height_px", "diameter_px"]].tolist() == [14.5, 25.5, 10, 12, 11]
    assert out["confidence"].tolist() == [4, 1]  # no <confidence>: one annotator
    assert (out.attrs["width"], out.attrs["height"]) == (200, 100)
    assert len(read_voc_labels(path, min_confidence=2)) == 1


@pytest.mark.parametrize("body, match", [
    ("<annotation><object>", "cannot be read as XML"),
    ("<annotation><object><bndbox><xmin>1</xmin></bndbox></object></annotation>", "object 1 has no complete"),
    ("<annotation><object><bndbox><xmin>9</xmin><ymin>0</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
     "</annotation>", "xmax < xmin"),
])
def test_bad_files_name_the_object_and_the_fix(tmp_path, body, match):
    path = tmp_path / "bad.xml"
    path.write_text(body)
    with pytest.raises(CatalogFormatError, match=match):
        read_voc_labels(path)


def test_the_ctx_labels_read_as_documented(shared_data):
    labels = [read_voc_labels(p) for p in sorted((shared_data / "ctx-mc11e" / "annotations" / "clustered").glob("*.xml"))]
    assert len(labels) == 8 and sum(map(len, labels)) == 3305  # the data README's count
    assert all(t.attrs["width"] == 2000 and t["x"].between(0, 1999).all() for t in labels)
