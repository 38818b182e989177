//! Directory changes made through the library or the control API (add, change, move, remove members and
//! departments, tag membership). Each change keeps the indexes current and yields the change_contact events
//! WeCom would push, with the apps whose scope the change touches.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::fixture::normalize_member;
use crate::generate::MAX_DEPTH;
use crate::model::{Department, Directory, Member};
use crate::state::State;

/// A partial change of a member; `None` leaves a field as it is. `department` moves the member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberUpdate {
    /// Renames the userid (pushed as `NewUserID`).
    #[serde(default)]
    pub new_userid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub department: Option<Vec<u32>>,
    #[serde(default)]
    pub order: Option<Vec<u32>>,
    #[serde(default)]
    pub is_leader_in_dept: Option<Vec<u8>>,
    #[serde(default)]
    pub main_department: Option<u32>,
    #[serde(default)]
    pub direct_leader: Option<Vec<String>>,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    #[serde(default)]
    pub gender: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub biz_mail: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub telephone: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub status: Option<u8>,
}

/// A partial change of a department; `parentid` moves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub name_en: Option<String>,
    #[serde(default)]
    pub parentid: Option<u32>,
    #[serde(default)]
    pub order: Option<u32>,
}

/// Tag membership changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagUpdate {
    #[serde(default)]
    pub add_users: Vec<String>,
    #[serde(default)]
    pub del_users: Vec<String>,
    #[serde(default)]
    pub add_parties: Vec<u32>,
    #[serde(default)]
    pub del_parties: Vec<u32>,
}

/// One change_contact event: its ChangeType, its fields in document order, and the apps (agentids) whose
/// visible scope it touches (before or after the change).
#[derive(Debug, Clone)]
pub(crate) struct ChangeEvent {
    pub change_type: &'static str,
    pub fields: Vec<(&'static str, String)>,
    pub apps: BTreeSet<u32>,
}

/// Member fields withheld from restricted apps, in callbacks as in user/get.
pub(crate) const SENSITIVE_FIELDS: &[&str] =
    &["Mobile", "Gender", "Email", "BizMail", "Avatar", "Address"];
/// Fields kept when contacts-sync member callbacks are minimal (URLs set after 2022-08-15).
pub(crate) const MINIMAL_FIELDS: &[&str] = &["UserID", "NewUserID", "Department"];

fn join<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn member_fields(m: &Member) -> Vec<(&'static str, String)> {
    vec![
        ("Name", m.name.clone()),
        ("Department", join(&m.department)),
        ("MainDepartment", m.main_department.to_string()),
        ("IsLeaderInDept", join(&m.is_leader_in_dept)),
        ("DirectLeader", m.direct_leader.join(",")),
        ("Position", m.position.clone()),
        ("Mobile", m.mobile.clone()),
        ("Gender", m.gender.clone()),
        ("Email", m.email.clone()),
        ("BizMail", m.biz_mail.clone()),
        ("Status", m.status.to_string()),
        ("Avatar", m.avatar.clone()),
        ("Alias", m.alias.clone()),
        ("Telephone", m.telephone.clone()),
        ("Address", m.address.clone()),
    ]
}

fn index_member(dir: &mut Directory, m: &Member) {
    let key = m.userid.to_lowercase();
    for (i, d) in m.department.iter().enumerate() {
        dir.dept_members.entry(*d).or_default().insert(key.clone());
        if m.is_leader_in_dept.get(i).copied() == Some(1)
            && let Some(dep) = dir.departments.get_mut(d)
        {
            dep.department_leader.push(m.userid.clone());
        }
    }
}

fn unindex_member(dir: &mut Directory, m: &Member) {
    let key = m.userid.to_lowercase();
    for d in &m.department {
        if let Some(set) = dir.dept_members.get_mut(d) {
            set.remove(&key);
        }
        if let Some(dep) = dir.departments.get_mut(d) {
            dep.department_leader.retain(|l| *l != m.userid);
        }
    }
}

fn resort_children(dir: &mut Directory, parent: u32) {
    let mut kids: Vec<(u32, u32)> = dir
        .departments
        .values()
        .filter(|d| d.parentid == parent && d.id != 1)
        .map(|d| (d.order, d.id))
        .collect();
    kids.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    dir.children
        .insert(parent, kids.into_iter().map(|(_, id)| id).collect());
}

impl State {
    fn corp_of(&self, corpid: Option<&str>) -> Result<usize, SimError> {
        match corpid {
            None if !self.world.corps.is_empty() => Ok(0),
            None => Err(SimError::UnknownCorp(String::new())),
            Some(c) => self
                .world
                .corp_index(c)
                .ok_or_else(|| SimError::UnknownCorp(c.to_owned())),
        }
    }

    fn apps_seeing_member(&mut self, ci: usize, m: &Member) -> BTreeSet<u32> {
        let agentids: Vec<u32> = self.world.corps[ci]
            .apps
            .iter()
            .map(|a| a.agentid)
            .collect();
        agentids
            .into_iter()
            .filter(|a| self.vis(ci, Some(*a)).member(m))
            .collect()
    }

    fn apps_seeing_dept(&mut self, ci: usize, id: u32) -> BTreeSet<u32> {
        let agentids: Vec<u32> = self.world.corps[ci]
            .apps
            .iter()
            .map(|a| a.agentid)
            .collect();
        agentids
            .into_iter()
            .filter(|a| self.vis(ci, Some(*a)).dept(id))
            .collect()
    }

    fn apps_seeing_tag(&mut self, ci: usize, id: u32) -> BTreeSet<u32> {
        let agentids: Vec<u32> = self.world.corps[ci]
            .apps
            .iter()
            .map(|a| a.agentid)
            .collect();
        agentids
            .into_iter()
            .filter(|a| self.vis(ci, Some(*a)).tag(id))
            .collect()
    }

    fn check_departments(&self, ci: usize, depts: &[u32]) -> Result<(), SimError> {
        let dir = &self.world.corps[ci].dir;
        for d in depts {
            if !dir.departments.contains_key(d) {
                return Err(SimError::UnknownDepartment(*d));
            }
        }
        Ok(())
    }

    pub(crate) fn op_add_member(
        &mut self,
        corpid: Option<&str>,
        mut m: Member,
    ) -> Result<(usize, Vec<ChangeEvent>), SimError> {
        let ci = self.corp_of(corpid)?;
        normalize_member(&mut m).map_err(SimError::InvalidChange)?;
        self.check_departments(ci, &m.department)?;
        let key = m.userid.to_lowercase();
        let dir = &mut self.world.corps[ci].dir;
        if dir.members.contains_key(&key) {
            return Err(SimError::MemberExists(m.userid));
        }
        index_member(dir, &m);
        dir.members.insert(key, m.clone());
        dir.version += 1;
        let apps = self.apps_seeing_member(ci, &m);
        let mut fields = vec![("UserID", m.userid.clone())];
        fields.extend(member_fields(&m));
        Ok((
            ci,
            vec![ChangeEvent {
                change_type: "create_user",
                fields,
                apps,
            }],
        ))
    }

    pub(crate) fn op_update_member(
        &mut self,
        corpid: Option<&str>,
        userid: &str,
        u: MemberUpdate,
    ) -> Result<(usize, Vec<ChangeEvent>), SimError> {
        let ci = self.corp_of(corpid)?;
        let old = self.world.corps[ci]
            .dir
            .member(userid)
            .cloned()
            .ok_or_else(|| SimError::UnknownMember(userid.to_owned()))?;
        let mut new = old.clone();
        if let Some(v) = u.new_userid.clone() {
            new.userid = v;
        }
        if let Some(v) = u.department {
            // A move without explicit orders/leader flags starts them fresh for the new departments.
            if v != new.department {
                new.order = Vec::new();
                new.is_leader_in_dept = Vec::new();
                new.main_department = 0;
            }
            new.department = v;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = u.$f { new.$f = v; } )* };
        }
        set!(
            name,
            order,
            is_leader_in_dept,
            main_department,
            direct_leader,
            position,
            mobile,
            gender,
            email,
            biz_mail,
            avatar,
            telephone,
            alias,
            address,
            status
        );
        normalize_member(&mut new).map_err(SimError::InvalidChange)?;
        self.check_departments(ci, &new.department)?;
        let old_key = old.userid.to_lowercase();
        let new_key = new.userid.to_lowercase();
        if new_key != old_key && self.world.corps[ci].dir.members.contains_key(&new_key) {
            return Err(SimError::MemberExists(new.userid));
        }
        let mut apps = self.apps_seeing_member(ci, &old);
        {
            let dir = &mut self.world.corps[ci].dir;
            unindex_member(dir, &old);
            dir.members.remove(&old_key);
            index_member(dir, &new);
            dir.members.insert(new_key.clone(), new.clone());
            if new.userid != old.userid {
                // Tags and leaders refer to members by userid; keep them pointing at the renamed member.
                for t in dir.tags.values_mut() {
                    for x in t
                        .users
                        .iter_mut()
                        .filter(|x| x.eq_ignore_ascii_case(&old.userid))
                    {
                        x.clone_from(&new.userid);
                    }
                }
            }
            dir.version += 1;
        }
        apps.extend(self.apps_seeing_member(ci, &new));
        let mut fields = vec![("UserID", old.userid.clone())];
        if new.userid != old.userid {
            fields.push(("NewUserID", new.userid.clone()));
        }
        let before = member_fields(&old);
        for (name, value) in member_fields(&new) {
            if before.iter().any(|(n, v)| *n == name && *v != value) {
                fields.push((name, value));
            }
        }
        if fields.len() == 1 {
            return Ok((ci, Vec::new()));
        }
        Ok((
            ci,
            vec![ChangeEvent {
                change_type: "update_user",
                fields,
                apps,
            }],
        ))
    }

    pub(crate) fn op_remove_member(
        &mut self,
        corpid: Option<&str>,
        userid: &str,
    ) -> Result<(usize, Vec<ChangeEvent>), SimError> {
        let ci = self.corp_of(corpid)?;
        let old = self.world.corps[ci]
            .dir
            .member(userid)
            .cloned()
            .ok_or_else(|| SimError::UnknownMember(userid.to_owned()))?;
        let apps = self.apps_seeing_member(ci, &old);
        let dir = &mut self.world.corps[ci].dir;
        unindex_member(dir, &old);
        dir.members.remove(&old.userid.to_lowercase());
        for t in dir.tags.values_mut() {
            t.users.retain(|x| !x.eq_ignore_ascii_case(&old.userid));
        }
        dir.version += 1;
        Ok((
            ci,
            vec![ChangeEvent {
                change_type: "delete_user",
                fields: vec![("UserID", old.userid)],
                apps,
            }],
        ))
    }

    pub(crate) fn op_add_department(
        &mut self,
        corpid: Option<&str>,
        mut d: Department,
    ) -> Result<(usize, Vec<ChangeEvent>), SimError> {
        let ci = self.corp_of(corpid)?;
        let dir = &mut self.world.corps[ci].dir;
        if d.id == 0 {
            d.id = dir.departments.keys().next_back().copied().unwrap_or(1) + 1;
        }
        if dir.departments.contains_key(&d.id) {
            return Err(SimError::DepartmentExists(d.id));
        }
        if !dir.departments.contains_key(&d.parentid) {
            return Err(SimError::UnknownDepartment(d.parentid));
        }
        if dir.depth(d.parentid) + 1 > MAX_DEPTH {
            return Err(SimError::InvalidChange(format!(
                "department tree may be at most {MAX_DEPTH} levels deep"
            )));
        }
        d.department_leader = Vec::new();
        dir.departments.insert(d.id, d.clone());
        resort_children(dir, d.parentid);
        dir.version += 1;
        let apps = self.apps_seeing_dept(ci, d.id);
        let fields = vec![
            ("Id", d.id.to_string()),
            ("Name", d.name.clone()),
            ("ParentId", d.parentid.to_string()),
            ("Order", d.order.to_string()),
        ];
        Ok((
            ci,
            vec![ChangeEvent {
                change_type: "create_party",
                fields,
                apps,
            }],
        ))
    }

    pub(crate) fn op_update_department(
        &mut self,
        corpid: Option<&str>,
        id: u32,
        u: DepartmentUpdate,
    ) -> Result<(usize, Vec<ChangeEvent>), SimError> {
        let ci = self.corp_of(corpid)?;
        let mut apps = self.apps_seeing_dept(ci, id);
        let dir = &mut self.world.corps[ci].dir;
        let old = dir
            .departments
            .get(&id)
            .cloned()
            .ok_or(SimError::UnknownDepartment(id))?;
        let mut new = old.clone();
        if let Some(p) = u.parentid {
            if id == 1 {
                return Err(SimError::InvalidChange(
                    "the root department cannot move".to_owned(),
                ));
            }
            if !dir.departments.contains_key(&p) {
                return Err(SimError::UnknownDepartment(p));
            }
            if dir.is_within(p, id) {
                return Err(SimError::InvalidChange(format!(
                    "department {id} cannot move below itself"
                )));
            }
            let sub_height = dir
                .subtree(id)
                .iter()
                .map(|d| dir.depth(*d))
                .max()
                .unwrap_or(0)
                - dir.depth(id)
                + 1;
            if dir.depth(p) + sub_height > MAX_DEPTH {
                return Err(SimError::InvalidChange(format!(
                    "department tree may be at most {MAX_DEPTH} levels deep"
                )));
            }
            new.parentid = p;
        }
        if let Some(v) = u.name {
            new.name = v;
        }
        if let Some(v) = u.name_en {
            new.name_en = v;
        }
        if let Some(v) = u.order {
            new.order = v;
        }
        dir.departments.insert(id, new.clone());
        resort_children(dir, old.parentid);
        resort_children(dir, new.parentid);
        dir.version += 1;
        apps.extend(self.apps_seeing_dept(ci, id));
        let mut fields = vec![("Id", id.to_string())];
        if new.name != old.name {
            fields.push(("Name", new.name.clone()));
        }
        if new.parentid != old.parentid {
            fields.push(("ParentId", new.parentid.to_string()));
        }
        if fields.len() == 1 {
            return Ok((ci, Vec::new()));
        }
        Ok((
            ci,
            vec![ChangeEvent {
                change_type: "update_party",
                fields,
                apps,
            }],
        ))
    }

    pub(crate) fn op_remove_department(
        &mut self,
        corpid: Option<&str>,
        id: u32,
    ) -> Result<(usize, Vec<ChangeEvent>), SimError> {
        let ci = self.corp_of(corpid)?;
        let apps = self.apps_seeing_dept(ci, id);
        let dir = &mut self.world.corps[ci].dir;
        let old = dir
            .departments
            .get(&id)
            .cloned()
            .ok_or(SimError::UnknownDepartment(id))?;
        if id == 1 {
            return Err(SimError::InvalidChange(
                "the root department cannot be deleted".to_owned(),
            ));
        }
        if dir.children.get(&id).is_some_and(|k| !k.is_empty()) {
            return Err(SimError::InvalidChange(format!(
                "department {id} still has sub-departments (60005)"
            )));
        }
        if dir.dept_members.get(&id).is_some_and(|m| !m.is_empty()) {
            return Err(SimError::InvalidChange(format!(
                "department {id} still has members (60006)"
            )));
        }
        dir.departments.remove(&id);
        dir.children.remove(&id);
        dir.dept_members.remove(&id);
        resort_children(dir, old.parentid);
        for t in dir.tags.values_mut() {
            t.departments.retain(|d| *d != id);
        }
        dir.version += 1;
        Ok((
            ci,
            vec![ChangeEvent {
                change_type: "delete_party",
                fields: vec![("Id", id.to_string())],
                apps,
            }],
        ))
    }

    pub(crate) fn op_update_tag(
        &mut self,
        corpid: Option<&str>,
        tagid: u32,
        u: TagUpdate,
    ) -> Result<(usize, Vec<ChangeEvent>), SimError> {
        let ci = self.corp_of(corpid)?;
        self.check_departments(ci, &u.add_parties)?;
        let apps = self.apps_seeing_tag(ci, tagid);
        let dir = &mut self.world.corps[ci].dir;
        let mut add_users = Vec::new();
        for x in &u.add_users {
            let m = dir
                .member(x)
                .ok_or_else(|| SimError::UnknownMember(x.clone()))?;
            add_users.push(m.userid.clone());
        }
        let tag = dir
            .tags
            .get_mut(&tagid)
            .ok_or(SimError::UnknownTag(tagid))?;
        let (mut added_u, mut deleted_u, mut added_p, mut deleted_p) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for x in add_users {
            if !tag.users.iter().any(|y| y.eq_ignore_ascii_case(&x)) {
                tag.users.push(x.clone());
                added_u.push(x);
            }
        }
        for x in &u.del_users {
            if let Some(pos) = tag.users.iter().position(|y| y.eq_ignore_ascii_case(x)) {
                deleted_u.push(tag.users.remove(pos));
            }
        }
        for p in &u.add_parties {
            if !tag.departments.contains(p) {
                tag.departments.push(*p);
                added_p.push(*p);
            }
        }
        for p in &u.del_parties {
            if let Some(pos) = tag.departments.iter().position(|y| y == p) {
                tag.departments.remove(pos);
                deleted_p.push(*p);
            }
        }
        dir.version += 1;
        let mut fields = vec![("TagId", tagid.to_string())];
        for (name, v) in [
            ("AddUserItems", added_u.join(",")),
            ("DelUserItems", deleted_u.join(",")),
            ("AddPartyItems", join(&added_p)),
            ("DelPartyItems", join(&deleted_p)),
        ] {
            if !v.is_empty() {
                fields.push((name, v));
            }
        }
        if fields.len() == 1 {
            return Ok((ci, Vec::new()));
        }
        Ok((
            ci,
            vec![ChangeEvent {
                change_type: "update_tag",
                fields,
                apps,
            }],
        ))
    }
}
