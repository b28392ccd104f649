"""The JSON API of double marking under ``/api/v1``: thin routes over
`service.double_marking` (assign, the second assessor's work and marks, a session's
assignments) and the inter-rater agreement it gives (`service.calibration.inter_rater`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from .cohort_routes import CalibrationParams, Cohorts
from .guard import GuardedRoute
from .problems import responses
from .routes import PREFIX, Service, SessionPath, Who
from .service import calibration, double_marking
from .service.calibration import InterRaterOut
from .service.double_marking import AssignIn, AssignmentOut, SecondMarksIn, SessionMarksOut

router = APIRouter(prefix=PREFIX, responses=responses(400, 401, 403, 422),
                   route_class=GuardedRoute)  # fmt: skip


@router.post("/sessions/{session_id}/double-marking", tags=["review"], status_code=201,
             summary="Ask a second assessor to mark the session's observed items blind",
             responses=responses(404, 409))  # fmt: skip
def assign_double_marking(
    service: Service, who: Who, session_id: SessionPath, body: AssignIn
) -> AssignmentOut:
    """Trainers and admins. The assessor (a live assessor or admin token's name) must not
    have recorded anything on the session; assigning them twice is a 409. Until they submit,
    the session is shown to them without its observations and overrides."""
    return double_marking.assign(service, who, session_id, body)


@router.get("/sessions/{session_id}/double-marking", tags=["review"],
            summary="A session's double-marking assignments, and the second marks once both "
            "sides are in", responses=responses(404))  # fmt: skip
def session_double_marking(service: Service, who: Who, session_id: SessionPath
                           ) -> SessionMarksOut:  # fmt: skip
    """An assessor still to mark the session sees only their own assignment, never a mark."""
    return double_marking.session_marks(service, who, session_id)


@router.post("/sessions/{session_id}/double-marks", tags=["review"], status_code=201,
             summary="Submit your blind second marks of a session",
             responses=responses(404, 409))  # fmt: skip
def submit_double_marks(
    service: Service, who: Who, session_id: SessionPath, body: SecondMarksIn
) -> AssignmentOut:
    """Every observed item once (pass or fail, a note), all at once, by the assigned
    assessor; 404 when you are not assigned, 409 when you submitted already. Second marks do
    not change the session's outcome."""
    return double_marking.submit(service, who, session_id, body)


@router.get("/double-marking", tags=["review"],
            summary="Your open double-marking assignments")  # fmt: skip
def my_double_marking(service: Service, who: Who) -> list[AssignmentOut]:
    return double_marking.mine(service, who)


@router.get("/calibration/inter-rater", tags=["cohorts"],
            summary="Inter-rater agreement from double marking, per item and assessor pair")
def calibration_inter_rater(
    cohorts: Cohorts, who: Who, params: Annotated[CalibrationParams, Depends()]
) -> InterRaterOut:
    """Over the completed double markings of the sessions the filters select: per observed
    item and per assessor pair, the pairs of marks (first: the session's latest observation
    of the item; second: the blind mark), how many agree, the percent agreement and Cohen's
    kappa, a warning below `min_count` pairs. Trainers and admins."""
    return calibration.inter_rater(cohorts, who, params.filters)
