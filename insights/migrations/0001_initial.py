# The app's first migration holds no table: every signal adds its own (0002 onwards), so
# the signals' migrations depend on one common root.
from django.db import migrations


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations: list[migrations.operations.base.Operation] = []
