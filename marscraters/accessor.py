"""The ``ds.craters`` accessor: thin methods over the plain functions of each stage.

Each method imports its function and calls it; nothing else lives here.  Validation happens in
those functions, where the data is used (an error in an accessor ``__init__`` turns into an
unhelpful AttributeError).
"""

from __future__ import annotations

from typing import Any

import xarray as xr

__all__ = ["CratersAccessor"]


@xr.register_dataset_accessor("craters")
class CratersAccessor:
    """Crater tools on a mosaic Dataset (``ir`` on ``(y, x)`` with a Mars CRS)."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    @property
    def grid(self) -> Any:
        """The mosaic's :class:`marscraters.crs.Grid` (transform, CRS and shape)."""
        from .crs import Grid

        return Grid.from_dataset(self._ds)

    def fill_missing(self, **kwargs: Any) -> xr.Dataset:
        """Fill no-data pixels; see :func:`marscraters.mosaic.fill_missing`."""
        from .mosaic import fill_missing

        return fill_missing(self._ds, **kwargs)

    def targets(self, catalog: Any, kind: str = "filled", **kwargs: Any) -> xr.DataArray:
        """Lazy target layer of ``catalog`` on this grid; see :func:`marscraters.targets.render_targets`."""
        from .targets import render_targets

        return render_targets(self._ds, catalog, kind=kind, **kwargs)

    def segment(self, model: Any = None, **kwargs: Any) -> xr.DataArray:
        """Lazy crater probability on this grid; see :func:`marscraters.segment.segment`."""
        from .segment import segment

        return segment(self._ds, model, **kwargs)

    def segment_to_zarr(self, out: Any, **kwargs: Any) -> Any:
        """Segment into a resumable Zarr store; see :func:`marscraters.segment.segment_to_zarr`."""
        from .segment import segment_to_zarr

        return segment_to_zarr(self._ds, out, **kwargs)

    def catalog(self, prob: Any = None, levels: int | str = "auto", **kwargs: Any) -> Any:
        """Seamless crater catalog of this mosaic on an image pyramid; see
        :func:`marscraters.assemble.catalog_from_mosaic`.

        ``prob`` is the probability at the mosaic's own pixels when already computed; without it
        the mosaic is segmented first (with ``model`` and the segmentation options ``depth``,
        ``batch_size``, ``chunks``, ``tile``, ``value_range``, ``nodata_fill``, ``tta``,
        ``precision`` taken from ``kwargs``, or from ``segment_options=`` as
        :func:`~marscraters.assemble.catalog_from_mosaic` takes them; an option given both ways
        takes its loose value).  ``levels=1`` searches the mosaic's own pixels only, as
        :func:`~marscraters.assemble.catalog_from_probability` does.
        """
        from .assemble import catalog_from_mosaic

        # catalog_from_mosaic's own segment_options= and the loose options, merged (the loose win)
        seg = dict(kwargs.pop("segment_options", None) or {})
        seg.update({k: kwargs.pop(k) for k in ("depth", "batch_size", "chunks", "tile", "value_range", "nodata_fill",
                                               "tta", "precision")
                    if k in kwargs})
        kwargs.setdefault("source", self._ds.attrs.get("source"))
        return catalog_from_mosaic(self._ds, prob, levels=levels, segment_options=seg, **kwargs)

    def footprint(self) -> Any:
        """The area this mosaic covers, as a GeoDataFrame; see :func:`marscraters.mosaic.mosaic_footprint`."""
        from .mosaic import mosaic_footprint

        return mosaic_footprint(self._ds)

    def footprint_catalog(self, catalog: Any, **kwargs: Any) -> Any:
        """Craters of ``catalog`` inside this mosaic; see :func:`marscraters.catalog.filter_catalog`."""
        from .catalog import filter_catalog

        return filter_catalog(catalog, footprint=self._ds, **kwargs)

    def browse(self, catalog: Any = None, truth: Any = None, prob: Any = None, **kwargs: Any) -> Any:
        """An interactive map of this mosaic (Panel/HoloViews); see :func:`marscraters.browse.browse`."""
        from .browse import browse

        return browse(self._ds, catalog, truth, prob, **kwargs)

    def save_html(self, path: Any, **kwargs: Any) -> Any:
        """A static HTML map of this mosaic; see :func:`marscraters.browse.save_html`."""
        from .browse import save_html

        return save_html(self._ds, path, **kwargs)
