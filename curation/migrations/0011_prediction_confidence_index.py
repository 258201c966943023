from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """An index for confidence conditions (`predictions[detector].car.confidence > 0.9`).

    Built CONCURRENTLY, so a deployment with millions of predictions keeps taking writes
    while it builds (3M predictions: about 3 s on the 2-core development machine);
    concurrent builds cannot run in a transaction, hence atomic = False.
    """

    atomic = False

    dependencies = [
        ("curation", "0010_shape_counts"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="prediction",
            index=models.Index(
                fields=["model", "label", "confidence"],
                include=("item",),
                name="prediction_model_label_conf",
            ),
        ),
    ]
