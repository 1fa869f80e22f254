"""What the engine and the Blender add-on share (pure Python / numpy, imported by both): the option
values (choices), the joint tables (joints), the result file (result) and the progress events (progress)."""
