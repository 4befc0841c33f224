"""People and their phones: a phone is a contact point; operators link phones to people.

What is known about a person is scoped like their cases: a name given in one department's case
is never shown in, or copied into, another department's case, and a phone is listed only to
those who may see a case that came from it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import Session

from casestore.models import Case, Contact, Person, PersonPhone, utcnow


@dataclass(frozen=True)
class Link:
    name: str | None
    national_id: str
    phone: str


ERASED_PHONE_PREFIX = "erased:"


def shown_phone(contact: Contact | None) -> str | None:
    """The phone to show for a contact: none once the person asked for erasure."""
    if contact is None or contact.phone.startswith(ERASED_PHONE_PREFIX):
        return None
    return contact.phone


def visible_contact(departments: Collection[str] | None) -> ColumnElement[bool]:
    """Contacts these departments may see: those that reached one of their cases."""
    if departments is None:
        return Contact.id.is_not(None)
    return exists().where(Case.contact_id == Contact.id, Case.department.in_(list(departments)))


def known_name(session: Session, national_id: str, department: str) -> str | None:
    """The name last recorded with this national ID on a case of this department."""
    return session.scalar(
        select(Case.citizen_name)
        .where(
            Case.national_id == national_id,
            Case.department == department,
            Case.citizen_name.is_not(None),
        )
        .order_by(Case.updated_at.desc(), Case.id.desc())
        .limit(1)
    )


def link_person(
    session: Session, case: Case, *, name: str | None, national_id: str, actor: str
) -> Person:
    """Record who the citizen of a case is and link the case's phone to them.

    The person (national ID) is shared by every department; their name is not: it lives on
    the case, and only a name this case's department already knows fills a blank one.
    """
    now = utcnow()
    person = session.scalar(select(Person).where(Person.national_id == national_id))
    if person is None:
        person = Person(national_id=national_id, name=None, created_at=now, updated_at=now)
        session.add(person)
        session.flush()
    if case.contact_id is not None:
        linked = session.get(PersonPhone, (person.id, case.contact_id))
        if linked is None:
            session.add(
                PersonPhone(
                    person_id=person.id, contact_id=case.contact_id, linked_at=now, linked_by=actor
                )
            )
    case.citizen_name = name or known_name(session, national_id, case.department)
    case.national_id = national_id
    case.updated_at = now
    return person


def _names(
    session: Session, national_ids: Collection[str], departments: Collection[str] | None
) -> dict[str, str | None]:
    """Each national ID seen on a case of these departments, with its latest name there."""
    query = select(Case.national_id, Case.citizen_name).where(
        Case.national_id.in_(list(national_ids))
    )
    if departments is not None:
        query = query.where(Case.department.in_(list(departments)))
    names: dict[str, str | None] = {}
    for national_id, name in session.execute(query.order_by(Case.updated_at, Case.id)):
        if national_id is not None and (name or national_id not in names):
            names[national_id] = name
    return names


def links_for_case(
    session: Session, case: Case, departments: Collection[str] | None
) -> tuple[list[Link], list[Link]]:
    """(people who use this case's phone, phones of this case's person), as far as these
    departments may see them (None: every department)."""
    sharing: list[Link] = []
    if case.contact_id is not None and case.contact is not None:
        linked = session.scalars(
            select(Person.national_id)
            .join(PersonPhone, PersonPhone.person_id == Person.id)
            .where(PersonPhone.contact_id == case.contact_id)
        ).all()
        names = _names(session, linked, departments)
        sharing = sorted(
            (Link(names[n], n, case.contact.phone) for n in linked if n in names),
            key=lambda link: (link.name or "", link.national_id),
        )
    phones: list[Link] = []
    if case.national_id:
        rows = session.execute(
            select(Contact.phone)
            .join(PersonPhone, PersonPhone.contact_id == Contact.id)
            .join(Person, Person.id == PersonPhone.person_id)
            .where(Person.national_id == case.national_id, visible_contact(departments))
            .order_by(Contact.phone)
        ).all()
        phones = [Link(case.citizen_name, case.national_id, r.phone) for r in rows]
    return sharing, phones


def forget_person(session: Session, national_id: str) -> None:
    """Erasure on request: the person and their phone links go."""
    person = session.scalar(select(Person).where(Person.national_id == national_id))
    if person is not None:
        session.execute(delete(PersonPhone).where(PersonPhone.person_id == person.id))
        session.delete(person)
