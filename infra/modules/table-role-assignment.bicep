// One role for one principal on each of some tables of one storage account: the narrowest scope
// Azure RBAC offers for table data, so the principal reads no other table of the account.
// main.bicep calls this module once per grant, with the role definition GUID taken from a named
// variable, as it calls role-assignment.bicep for every other resource.

@description('Name of the storage account, in this resource group.')
param storageAccountName string

@description('Names of the tables the role is granted on; each must exist.')
param tableNames array

@description('GUID of the built-in role definition.')
param roleDefinitionId string

@description('What the grant is for, shown on each assignment in the portal.')
param roleDescription string

@description('Object ID of the principal that gets the role.')
param principalId string

@description('Type of that principal: ServicePrincipal for a managed identity.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource onTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for i in range(0, length(tableNames)): {
  name: guid(tables[i].id, principalId, roleDefinitionId)
  scope: tables[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: principalType
    description: roleDescription
  }
}]
