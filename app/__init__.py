"""The Qt front end. Talks to the engine only through messages and plain data; never imports torch."""
