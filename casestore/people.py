"""People and their phones: a phone is a contact point; operators link phones to people."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casestore.models import Case, Contact, Person, PersonPhone, utcnow


@dataclass(frozen=True)
class Link:
    name: str | None
    national_id: str
    phone: str


def link_person(
    session: Session, case: Case, *, name: str | None, national_id: str, actor: str
) -> Person:
    """Record who the citizen of a case is and link the case's phone to them."""
    now = utcnow()
    person = session.scalar(select(Person).where(Person.national_id == national_id))
    if person is None:
        person = Person(national_id=national_id, name=name, created_at=now, updated_at=now)
        session.add(person)
        session.flush()
    elif name:
        person.name, person.updated_at = name, now
    if case.contact_id is not None:
        linked = session.get(PersonPhone, (person.id, case.contact_id))
        if linked is None:
            session.add(
                PersonPhone(
                    person_id=person.id, contact_id=case.contact_id, linked_at=now, linked_by=actor
                )
            )
    case.citizen_name = name or person.name
    case.national_id = national_id
    case.updated_at = now
    return person


def links_for_case(session: Session, case: Case) -> tuple[list[Link], list[Link]]:
    """(people who use this case's phone, phones of this case's person)."""
    sharing: list[Link] = []
    if case.contact_id is not None:
        rows = session.execute(
            select(Person.name, Person.national_id, Contact.phone)
            .join(PersonPhone, PersonPhone.person_id == Person.id)
            .join(Contact, Contact.id == PersonPhone.contact_id)
            .where(PersonPhone.contact_id == case.contact_id)
            .order_by(Person.name)
        ).all()
        sharing = [Link(r.name, r.national_id, r.phone) for r in rows]
    phones: list[Link] = []
    if case.national_id:
        rows = session.execute(
            select(Person.name, Person.national_id, Contact.phone)
            .join(PersonPhone, PersonPhone.person_id == Person.id)
            .join(Contact, Contact.id == PersonPhone.contact_id)
            .where(Person.national_id == case.national_id)
            .order_by(Contact.phone)
        ).all()
        phones = [Link(r.name, r.national_id, r.phone) for r in rows]
    return sharing, phones


def forget_person(session: Session, national_id: str) -> None:
    """Erasure on request: the person and their phone links go."""
    person = session.scalar(select(Person).where(Person.national_id == national_id))
    if person is not None:
        session.execute(delete(PersonPhone).where(PersonPhone.person_id == person.id))
        session.delete(person)
