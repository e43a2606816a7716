"""`sclbench browse`: a static site of sample cards per result record, opened from disk (no server).

`build_site` writes it; `SplitView` / `MediaItem` are what the caller (sclbench.app.browse, which reads
the task's data) passes in so cards can show pictures, questions and captions.
"""

from sclbench.results.browse.media import MediaItem, SplitView
from sclbench.results.browse.site import PageSummary, SiteSummary, build_site, page_path

__all__ = ["MediaItem", "PageSummary", "SiteSummary", "SplitView", "build_site", "page_path"]
