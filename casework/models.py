"""Import every area's models, so the metadata (and Alembic) sees the whole schema."""

from casework.auth.models import ApiToken, User, UserCommune  # noqa: F401
from casework.cases import tasks as _case_tasks  # noqa: F401 - registers the import jobs
from casework.cases.models import (  # noqa: F401
    Assignment,
    Case,
    CaseChange,
    CaseCode,
    CaseNote,
    CaseNumberSequence,
    CaseTransition,
    Child,
    Consent,
    ImportBatch,
    Referral,
    SiblingLink,
)
from casework.jobs import tasks as _job_tasks  # noqa: F401 - registers the built-in jobs
from casework.jobs.models import Job  # noqa: F401
from casework.locations import tasks as _location_tasks  # noqa: F401 - registers the area's jobs
from casework.locations.models import (  # noqa: F401
    Commune,
    LegacyDistrict,
    LegacyMapping,
    LegacyProvince,
    LegacyWard,
    Province,
)
from casework.notifications.models import Notification  # noqa: F401
from casework.payments.models import (  # noqa: F401
    ApprovalBand,
    Disbursement,
    PaymentDecision,
    PaymentRequest,
    Programme,
)
from casework.security.files import StoredFile  # noqa: F401
from casework.security.keys import DataKey  # noqa: F401
from casework.stats.models import StatsSnapshot, StatsVersion  # noqa: F401  # noqa: F401
from casework.support.models import (  # noqa: F401
    Assessment,
    ClosureRequest,
    EmergencyMeasure,
    MonitoringVisit,
    PlannedService,
    ServiceRecord,
    SupportPlan,
)
