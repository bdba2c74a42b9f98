"""Rendering hostile documents into page images, in a limited child process: the parts every renderer shares.

    rendering.child   starting the child (empty environment) and, inside it, its limits and answer stream
    rendering.pages   inside the child: a PDF page rendered under a pixel cap, an image opened, a PNG encoded

Its callers own their protocol and their limits: `activities.page_images` (OCR: every page asked for, streamed)
and `api.page_previews` (the review page: a page count, one page). It sits outside both because the API must not
import activities and docflow/ is pure. `rendering.pages` imports PDFium and Pillow, so only a child imports it.
"""
