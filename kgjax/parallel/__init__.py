"""kgjax on many devices and hosts: meshes, placement rules, row-split tables, transfers.

`layout.Layout` composes the rest; see its module docstring for the map of this room.
"""
