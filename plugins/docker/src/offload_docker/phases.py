"""A handle's ``phase``: ``preparing`` while the image is pulled or built and the
container is created and started, ``started`` once it runs, ``failed`` when preparing
failed. Apart from :mod:`.starting`, so that loading the backend imports nothing more."""

PREPARING, STARTED, FAILED = "preparing", "started", "failed"
