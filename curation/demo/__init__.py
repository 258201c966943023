"""The demo dataset: procedurally drawn street scenes, offline and deterministic per seed.

Each scene is a small pinhole-camera street (sky, skyline, road with lanes, sidewalks)
with cars, trucks, buses, pedestrians, bicycles, traffic lights and signs placed at
random distances, so size, position and occlusion vary the way they do in real driving
data. Weather and time of day are rendered, not just labelled. The output is a JSONL
manifest in the ingest format (`curation.bulk.validate.clean_item_record`), the JPEG files beside
it, and `truth.json`, which lists what was planted for the curation tools to find: exact
and near duplicates, and label errors in the ground truth. The predictions of one model,
"demo-detector", come with the mistakes real detectors make.

Every image depends only on (seed, index), so the files are the same whether they are
drawn by one process or several.

- painters: how each kind of object is drawn
- scenes: the camera, the street, where objects go, weather and time of day
- items: one item drawn, with its metadata, ground truth and the detector's predictions
- planted: the duplicates and label errors, and the plan of which items get them
- dataset: demo_generate, which writes the whole dataset into a folder
"""
