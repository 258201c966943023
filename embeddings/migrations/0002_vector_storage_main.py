from django.db import migrations


class Migration(migrations.Migration):
    """Keep vectors inline in the table rows instead of in TOAST.

    A 512-d vector is 2,056 bytes, just over PostgreSQL's TOAST threshold, so with the
    default storage every vector lands out of line and every exact distance first fetches
    it from the TOAST table (about twice the cost). MAIN keeps it in the row (it can still
    move out of line as a last resort, for the largest dimensions).
    """

    dependencies = [("embeddings", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE embeddings_embedding ALTER COLUMN vector SET STORAGE MAIN",
            "ALTER TABLE embeddings_embedding ALTER COLUMN vector SET STORAGE EXTENDED",
        ),
    ]
