"""The panel's long operators (Capture; Start, from a camera) share one pattern: start a job, step it
on a window-manager timer, mirror it in the panel's state, report when it ends. ``ModalJob`` holds
that loop once; each operator says how its own job starts, shows, cancels and reports."""


def redraw(context, area_types=("VIEW_3D", "IMAGE_EDITOR", "STATUSBAR")):
    """Tag the areas that show a job (the rig, the camera image, the status bar) for a redraw."""
    screen = getattr(context, "screen", None)
    for area in getattr(screen, "areas", ()):
        if area.type in area_types:
            area.tag_redraw()


class ModalJob:
    """Mixin for a ``bpy.types.Operator`` that runs a job (``jobs.CaptureJob``, ``live.LiveJob``: both
    have ``step(context)`` and ``finished``). The operator gives:

    - ``tick_s``: the timer's period in seconds;
    - ``job_current()``: the running job, or None (a staticmethod);
    - ``job_start(context)``: start one, or report why not and return None;
    - ``job_sync(context, job)``: mirror the job in the panel's state;
    - ``job_escape(context, job)``: what Esc does (cancel, or stop a recording);
    - ``job_report(context, job)``: report the ended job, returning the operator's result set;
    - ``job_cancel_requested(context)`` (optional): a cancel asked for from outside the modal loop.
    """

    _timer = None
    tick_s = 0.1

    def job_cancel_requested(self, context):
        return False

    def invoke(self, context, event):
        job = self.job_start(context)
        if job is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(self.tick_s, window=context.window)
        wm.modal_handler_add(self)
        redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self.job_current()
        if job is None:
            return self.job_end(context, {"CANCELLED"})
        if event.type == "ESC" or self.job_cancel_requested(context):
            self.job_escape(context, job)
        if event.type == "TIMER" or job.finished:
            job.step(context)
            self.job_sync(context, job)
            redraw(context)
            if job.finished:
                return self.job_end(context, self.job_report(context, job))
            return {"RUNNING_MODAL"}
        return {"PASS_THROUGH"}

    def job_end(self, context, result):
        """Remove the timer, redraw; -> ``result``."""
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        redraw(context)
        return result
