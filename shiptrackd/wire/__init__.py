"""
The control API's contract, shared by the daemon, `shiptrackctl` and the console.

`names` is stdlib only (ctl's start-up time); the msgspec types live in the other modules and are
imported where a command actually talks to the daemon, never by `shiptrackctl --help`.
"""
